//! The `send.rate` ceiling, shared by every sender. Governor's default burst equals the rate,
//! which lets up to twice the rate through in the first second; a burst of about 10 ms' worth
//! keeps the ceiling from the first request on.

use std::num::NonZeroU32;

use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};

use crate::campaign::Rate;

/// The burst allowed for a rate: 10 ms' worth, at least one request.
pub(crate) fn burst(rate: Rate) -> u32 {
    let per_sec = f64::from(rate.count) / rate.per.as_secs_f64();
    ((per_sec * 0.010).ceil() as u32).max(1)
}

pub(crate) fn limiter(rate: Rate) -> DefaultDirectRateLimiter {
    let period = rate.per / rate.count;
    let burst = NonZeroU32::new(burst(rate)).unwrap_or(NonZeroU32::MIN);
    let quota = Quota::with_period(period)
        .unwrap_or_else(|| Quota::per_second(NonZeroU32::MAX))
        .allow_burst(burst);
    RateLimiter::direct(quota)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, Instant};

    #[test]
    fn bursts_are_small() {
        let r = |count, secs| Rate {
            count,
            per: Duration::from_secs(secs),
        };
        assert_eq!(burst(r(200, 1)), 2);
        assert_eq!(burst(r(20, 1)), 1);
        assert_eq!(burst(r(5000, 3600)), 1);
        assert_eq!(burst(r(10_000, 1)), 100);
    }

    #[tokio::test]
    async fn the_first_moment_is_held_too() {
        // At 100/s with a burst of 1, 11 permits need at least 100 ms.
        let l = limiter(Rate {
            count: 100,
            per: Duration::from_secs(1),
        });
        let start = Instant::now();
        for _ in 0..11 {
            l.until_ready().await;
        }
        assert!(
            start.elapsed() >= Duration::from_millis(95),
            "{:?}",
            start.elapsed()
        );
    }
}
