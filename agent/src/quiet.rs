//! Quiet hours: a local-time window (`21:00-09:00`, may wrap midnight) with no campaign sends.

use chrono::{Local, NaiveTime, Timelike};

/// A daily window in local time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QuietHours {
    start: u32,
    end: u32,
}

fn minutes(s: &str) -> Result<u32, String> {
    let t = NaiveTime::parse_from_str(s.trim(), "%H:%M").map_err(|e| format!("{s:?}: {e}"))?;
    Ok(t.hour() * 60 + t.minute())
}

impl QuietHours {
    /// Parses `HH:MM-HH:MM`.
    pub fn parse(s: &str) -> Result<Self, String> {
        let (a, b) = s
            .split_once('-')
            .ok_or_else(|| format!("{s:?}: expected HH:MM-HH:MM"))?;
        let (start, end) = (minutes(a)?, minutes(b)?);
        if start == end {
            return Err(format!("{s:?}: empty window"));
        }
        Ok(Self { start, end })
    }

    /// True when `minute_of_day` (0..1440) is inside the window.
    pub fn contains(&self, minute_of_day: u32) -> bool {
        if self.start < self.end {
            (self.start..self.end).contains(&minute_of_day)
        } else {
            minute_of_day >= self.start || minute_of_day < self.end
        }
    }

    /// True now, in the box's local time zone.
    pub fn now(&self) -> bool {
        let t = Local::now();
        self.contains(t.hour() * 60 + t.minute())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn windows() {
        let night = QuietHours::parse("21:00-09:00").unwrap();
        assert!(night.contains(22 * 60));
        assert!(night.contains(3 * 60));
        assert!(!night.contains(12 * 60));
        assert!(!night.contains(9 * 60));
        let lunch = QuietHours::parse("13:00-14:00").unwrap();
        assert!(lunch.contains(13 * 60 + 30));
        assert!(!lunch.contains(14 * 60));
        for bad in ["", "21:00", "25:00-01:00", "10:00-10:00", "ab-cd"] {
            assert!(QuietHours::parse(bad).is_err(), "{bad}");
        }
    }
}
