-- cosmocast's ledger on PostgreSQL, migration 4: the channel a run sends through (the
-- fingerprint of its id, as `channel_slots` has it). Claims on a channel no campaign limits
-- take no slot; when a limit first appears, the contacts of the channel's runs in the window
-- become its slots (`budget.rs`).
ALTER TABLE runs ADD COLUMN channel TEXT COLLATE "C";
