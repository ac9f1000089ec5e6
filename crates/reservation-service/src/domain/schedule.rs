//! Opening hours in the restaurant's time zone, and the slot grid bookings
//! start on.
//!
//! Slots are wall-clock times: a sitting that opens at 12:00 with 15-minute
//! slots takes bookings at 12:00, 12:15, … up to its last seating, and every
//! stay must end by the sitting's close. Stays are measured in real minutes.
//! On the day the clocks go forward, the wall-clock times that never happen
//! are not slots; on the day they go back, a repeated wall-clock time gives
//! two slots, each its own instant with its own seats, and a closing time
//! that repeats means the later of the two.

use chrono::{DateTime, Datelike, LocalResult, NaiveDate, NaiveDateTime, TimeDelta, TimeZone, Timelike, Utc};
use chrono_tz::Tz;
use std::collections::BTreeMap;
use std::fmt;

/// The grid every time of day and the seat ledger are on, in minutes.
pub const GRAIN_MINUTES: u16 = 5;

/// A time of day in the restaurant's zone: minutes after midnight on the
/// [`GRAIN_MINUTES`] grid, from 00:00 to 24:00 (the end of the day, for
/// closing).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct TimeOfDay(u16);

impl TimeOfDay {
    /// Parses `HH:MM`, 00:00 to 24:00, on the 5-minute grid.
    ///
    /// # Errors
    /// Another shape, or a time off the grid.
    pub fn parse(text: &str) -> Result<Self, String> {
        let invalid = || format!("{text:?} is not a time of day such as 19:30 (00:00 to 24:00)");
        let (hours, minutes) = text.split_once(':').ok_or_else(invalid)?;
        if hours.len() != 2 || minutes.len() != 2 {
            return Err(invalid());
        }
        let hours: u16 = hours.parse().map_err(|_| invalid())?;
        let minutes: u16 = minutes.parse().map_err(|_| invalid())?;
        let total = hours * 60 + minutes;
        if minutes >= 60 || total > 24 * 60 {
            return Err(invalid());
        }
        if !total.is_multiple_of(GRAIN_MINUTES) {
            return Err(format!("{text} is not on the {GRAIN_MINUTES}-minute grid that times of day are on"));
        }
        Ok(Self(total))
    }

    /// Minutes after midnight.
    pub const fn minutes(self) -> u16 {
        self.0
    }

    /// This time on `date`, as a wall-clock time (24:00 is the next midnight).
    fn on(self, date: NaiveDate) -> NaiveDateTime {
        date.and_hms_opt(0, 0, 0).unwrap_or_default() + TimeDelta::minutes(i64::from(self.0))
    }
}

impl fmt::Display for TimeOfDay {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:02}:{:02}", self.0 / 60, self.0 % 60)
    }
}

/// One service of a day, such as lunch: open from `opens` to `closes`,
/// seating parties up to `last_seating`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sitting {
    opens: TimeOfDay,
    closes: TimeOfDay,
    last_seating: Option<TimeOfDay>,
}

impl Sitting {
    /// A sitting; without a last seating, parties are seated as long as their
    /// stay ends by closing.
    ///
    /// # Errors
    /// It closes before it opens, or the last seating is outside its hours.
    pub fn new(opens: TimeOfDay, closes: TimeOfDay, last_seating: Option<TimeOfDay>) -> Result<Self, String> {
        if closes <= opens {
            return Err(format!("a sitting must close after it opens ({opens}–{closes}); hours end by 24:00"));
        }
        if let Some(last) = last_seating
            && !(opens <= last && last < closes)
        {
            return Err(format!("the last seating {last} must be from {opens} and before {closes}"));
        }
        Ok(Self { opens, closes, last_seating })
    }

    /// When it opens.
    pub const fn opens(&self) -> TimeOfDay {
        self.opens
    }

    /// When it closes.
    pub const fn closes(&self) -> TimeOfDay {
        self.closes
    }

    /// The last time a party is seated, if set.
    pub const fn last_seating(&self) -> Option<TimeOfDay> {
        self.last_seating
    }
}

impl fmt::Display for Sitting {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}–{}", self.opens, self.closes)?;
        if let Some(last) = self.last_seating {
            write!(f, " (last seating {last})")?;
        }
        Ok(())
    }
}

/// A day's sittings in time order, none overlapping; none means closed.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Hours(Vec<Sitting>);

impl Hours {
    /// The day's hours.
    ///
    /// # Errors
    /// Two sittings overlap.
    pub fn new(mut sittings: Vec<Sitting>) -> Result<Self, String> {
        sittings.sort_by_key(|sitting| sitting.opens);
        if let Some(pair) = sittings.windows(2).find(|pair| pair[1].opens < pair[0].closes) {
            return Err(format!("the sittings {} and {} overlap", pair[0], pair[1]));
        }
        Ok(Self(sittings))
    }

    /// The sittings.
    pub fn sittings(&self) -> &[Sitting] {
        &self.0
    }
}

impl fmt::Display for Hours {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.is_empty() {
            return f.write_str("closed");
        }
        let sittings: Vec<String> = self.0.iter().map(Sitting::to_string).collect();
        f.write_str(&sittings.join(", "))
    }
}

/// When the restaurant takes parties: its zone, its slot grid, its hours
/// for each weekday and the dates that differ.
#[derive(Debug, Clone, PartialEq)]
pub struct Schedule {
    /// The zone the hours are in.
    pub time_zone: Tz,
    /// Minutes between slots, a multiple of [`GRAIN_MINUTES`].
    pub slot_minutes: u16,
    /// Hours by weekday, Monday first.
    pub weekly: [Hours; 7],
    /// Dates whose hours differ from their weekday's (no sittings: closed).
    pub exceptions: BTreeMap<NaiveDate, Hours>,
}

/// Why a stay does not fit the schedule. Each names the rule broken.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ScheduleError {
    /// Nothing is open that day.
    #[error("the restaurant is closed on {weekday} {date}")]
    Closed {
        /// The day, in the restaurant's zone.
        date: NaiveDate,
        /// Its weekday.
        weekday: chrono::Weekday,
    },
    /// The day is open, but not at that time.
    #[error("{at} on {date} is outside the opening hours ({hours}, {time_zone})")]
    OutsideHours {
        /// The day.
        date: NaiveDate,
        /// The wall-clock time asked for.
        at: String,
        /// The day's hours.
        hours: String,
        /// The zone they are in.
        time_zone: Tz,
    },
    /// Not one of the sitting's slots.
    #[error("bookings start every {slot_minutes} minutes from {opens}; {at} is not one of those times")]
    OffTheGrid {
        /// The grid.
        slot_minutes: u16,
        /// Where it starts.
        opens: TimeOfDay,
        /// The wall-clock time asked for.
        at: String,
    },
    /// After the sitting's last seating.
    #[error("the last seating of that sitting is at {last_seating}")]
    AfterLastSeating {
        /// The last seating.
        last_seating: TimeOfDay,
    },
    /// The stay would end after closing.
    #[error("a {minutes}-minute stay from {at} runs past closing at {closes}")]
    PastClosing {
        /// The stay's length.
        minutes: i64,
        /// Its start, wall clock.
        at: String,
        /// Closing.
        closes: TimeOfDay,
    },
}

impl Schedule {
    /// The hours on `date` (the restaurant's calendar).
    pub fn hours_on(&self, date: NaiveDate) -> &Hours {
        self.exceptions.get(&date).unwrap_or(&self.weekly[date.weekday().num_days_from_monday() as usize])
    }

    /// Checks that a stay of `duration` from `starts_at` starts on a slot of
    /// an open sitting, by its last seating, and ends by its close.
    ///
    /// # Errors
    /// The rule it breaks.
    pub fn check(&self, starts_at: DateTime<Utc>, duration: TimeDelta) -> Result<(), ScheduleError> {
        let local = starts_at.with_timezone(&self.time_zone);
        let date = local.date_naive();
        let hours = self.hours_on(date);
        if hours.sittings().is_empty() {
            return Err(ScheduleError::Closed { date, weekday: date.weekday() });
        }
        let wall_clock = local.format("%H:%M:%S%.f").to_string();
        let at = u16::try_from(local.hour() * 60 + local.minute()).unwrap_or(u16::MAX);
        let sitting =
            hours.sittings().iter().find(|sitting| sitting.opens.0 <= at && at < sitting.closes.0).ok_or_else(
                || ScheduleError::OutsideHours {
                    date,
                    at: wall_clock.clone(),
                    hours: hours.to_string(),
                    time_zone: self.time_zone,
                },
            )?;
        let on_the_minute = local.second() == 0 && local.nanosecond() == 0;
        if !on_the_minute || !(at - sitting.opens.0).is_multiple_of(self.slot_minutes) {
            return Err(ScheduleError::OffTheGrid {
                slot_minutes: self.slot_minutes,
                opens: sitting.opens,
                at: wall_clock,
            });
        }
        if let Some(last_seating) = sitting.last_seating
            && at > last_seating.0
        {
            return Err(ScheduleError::AfterLastSeating { last_seating });
        }
        if starts_at + duration > self.closing(date, sitting.closes) {
            return Err(ScheduleError::PastClosing {
                minutes: duration.num_minutes(),
                at: local.format("%H:%M").to_string(),
                closes: sitting.closes,
            });
        }
        Ok(())
    }

    /// The day's slots in time order: each start on `date` at which a stay of
    /// `duration` fits [`Self::check`].
    pub fn slots(&self, date: NaiveDate, duration: TimeDelta) -> Vec<DateTime<Utc>> {
        let mut slots = Vec::new();
        for sitting in self.hours_on(date).sittings() {
            let last = sitting.last_seating.unwrap_or(sitting.closes);
            let mut at = sitting.opens;
            while at < sitting.closes && at <= last {
                let instants = match self.time_zone.from_local_datetime(&at.on(date)) {
                    LocalResult::Single(instant) => vec![instant],
                    LocalResult::Ambiguous(earlier, later) => vec![earlier, later],
                    LocalResult::None => vec![],
                };
                let fitting = instants.into_iter().map(|instant| instant.with_timezone(&Utc));
                slots.extend(fitting.filter(|start| self.check(*start, duration).is_ok()));
                at = TimeOfDay(at.0 + self.slot_minutes);
            }
        }
        slots.sort_unstable();
        slots.dedup();
        slots
    }

    /// The instant the wall clock shows `closes` on `date`: the later one if
    /// it shows it twice, the end of the jump if it skips it.
    fn closing(&self, date: NaiveDate, closes: TimeOfDay) -> DateTime<Utc> {
        let wall_clock = closes.on(date);
        (0..=24)
            .find_map(|step| {
                self.time_zone
                    .from_local_datetime(&(wall_clock + TimeDelta::minutes(step * i64::from(GRAIN_MINUTES))))
                    .latest()
            })
            .map_or_else(|| wall_clock.and_utc(), |instant| instant.with_timezone(&Utc))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn time(text: &str) -> TimeOfDay {
        TimeOfDay::parse(text).unwrap_or_else(|e| panic!("{e}"))
    }

    fn sitting(opens: &str, closes: &str, last: Option<&str>) -> Sitting {
        Sitting::new(time(opens), time(closes), last.map(time)).unwrap_or_else(|e| panic!("{e}"))
    }

    fn every_day(time_zone: Tz, sittings: Vec<Sitting>) -> Schedule {
        let hours = Hours::new(sittings).unwrap_or_else(|e| panic!("{e}"));
        Schedule {
            time_zone,
            slot_minutes: 15,
            weekly: std::array::from_fn(|_| hours.clone()),
            exceptions: BTreeMap::new(),
        }
    }

    fn at(text: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(text).unwrap_or_else(|e| panic!("{e}")).with_timezone(&Utc)
    }

    fn date(text: &str) -> NaiveDate {
        text.parse().unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn times_of_day_are_on_the_five_minute_grid_up_to_midnight() {
        assert_eq!(time("19:30").minutes(), 1170);
        assert_eq!(time("24:00").minutes(), 1440);
        assert_eq!(time("07:05").to_string(), "07:05");
        for bad in ["7:30", "19:31", "24:05", "25:00", "12:60", "noon", "12-30", ""] {
            assert!(TimeOfDay::parse(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn sittings_open_before_they_close_and_never_overlap() {
        assert!(Sitting::new(time("15:00"), time("12:00"), None).is_err());
        assert!(Sitting::new(time("12:00"), time("15:00"), Some(time("15:00"))).is_err());
        assert!(Sitting::new(time("12:00"), time("15:00"), Some(time("11:45"))).is_err());
        let overlapping = Hours::new(vec![sitting("19:00", "23:00", None), sitting("12:00", "19:30", None)]);
        assert!(overlapping.is_err());
        let day = Hours::new(vec![sitting("19:00", "23:00", None), sitting("12:00", "15:00", Some("14:00"))]);
        assert_eq!(day.map(|hours| hours.to_string()), Ok("12:00–15:00 (last seating 14:00), 19:00–23:00".to_owned()));
    }

    #[test]
    fn a_stay_starts_on_a_slot_of_an_open_sitting_and_ends_by_its_close() {
        let rome = every_day(
            chrono_tz::Europe::Rome,
            vec![sitting("12:00", "15:00", Some("14:00")), sitting("19:00", "23:00", None)],
        );
        let ninety = TimeDelta::minutes(90);
        // 2026-07-01 is a Wednesday; Rome is UTC+2 in summer.
        assert_eq!(rome.check(at("2026-07-01T12:00:00+02:00"), ninety), Ok(()));
        assert_eq!(rome.check(at("2026-07-01T19:15:00+02:00"), ninety), Ok(()));
        assert_eq!(rome.check(at("2026-07-01T21:30:00+02:00"), ninety), Ok(()));
        let error = |text| rome.check(at(text), ninety).map_err(|e| e.to_string());
        assert_eq!(
            error("2026-07-01T16:00:00+02:00"),
            Err("16:00:00 on 2026-07-01 is outside the opening hours (12:00–15:00 (last seating 14:00), 19:00–23:00, \
                 Europe/Rome)"
                .to_owned())
        );
        assert_eq!(
            error("2026-07-01T19:10:00+02:00"),
            Err("bookings start every 15 minutes from 19:00; 19:10:00 is not one of those times".to_owned())
        );
        assert!(matches!(rome.check(at("2026-07-01T19:15:00.5+02:00"), ninety), Err(ScheduleError::OffTheGrid { .. })));
        assert_eq!(error("2026-07-01T14:15:00+02:00"), Err("the last seating of that sitting is at 14:00".to_owned()));
        assert_eq!(
            error("2026-07-01T21:45:00+02:00"),
            Err("a 90-minute stay from 21:45 runs past closing at 23:00".to_owned())
        );
        // The same instant written in UTC is the same slot.
        assert_eq!(rome.check(at("2026-07-01T10:00:00Z"), ninety), Ok(()));
    }

    #[test]
    fn closed_dates_and_exceptional_hours_replace_the_weekday() {
        let mut schedule = every_day(chrono_tz::UTC, vec![sitting("12:00", "23:00", None)]);
        schedule.weekly[0] = Hours::default(); // closed on Mondays
        schedule.exceptions.insert(date("2026-12-25"), Hours::default());
        schedule
            .exceptions
            .insert(date("2026-12-07"), Hours::new(vec![sitting("18:00", "22:00", None)]).unwrap_or_default());
        let hour = TimeDelta::hours(1);
        assert!(matches!(
            schedule.check(at("2026-12-25T19:00:00Z"), hour),
            Err(ScheduleError::Closed { weekday: chrono::Weekday::Fri, .. })
        ));
        assert!(matches!(schedule.check(at("2026-11-30T19:00:00Z"), hour), Err(ScheduleError::Closed { .. })));
        // 2026-12-07 is a Monday, open by exception in the evening only.
        assert_eq!(schedule.check(at("2026-12-07T19:00:00Z"), hour), Ok(()));
        assert!(matches!(schedule.check(at("2026-12-07T12:00:00Z"), hour), Err(ScheduleError::OutsideHours { .. })));
        assert!(schedule.slots(date("2026-12-25"), hour).is_empty());
    }

    #[test]
    fn the_slots_of_a_day_are_exactly_the_starts_the_check_accepts() {
        let schedule = every_day(
            chrono_tz::Europe::Rome,
            vec![sitting("12:00", "15:00", Some("14:00")), sitting("19:00", "23:00", None)],
        );
        let ninety = TimeDelta::minutes(90);
        let day = date("2026-07-01");
        let slots = schedule.slots(day, ninety);
        assert_eq!(slots.first(), Some(&at("2026-07-01T12:00:00+02:00")));
        assert_eq!(slots.last(), Some(&at("2026-07-01T21:30:00+02:00")));
        // Lunch 12:00–13:30 (a later start runs past 15:00) is 7 slots, dinner 19:00–21:30 is 11.
        assert_eq!(slots.len(), 7 + 11);
        let mut start = at("2026-07-01T00:00:00+02:00");
        while start < at("2026-07-02T00:00:00+02:00") {
            assert_eq!(schedule.check(start, ninety).is_ok(), slots.contains(&start), "{start}");
            start += TimeDelta::minutes(5);
        }
    }

    #[test]
    fn on_the_day_clocks_go_forward_the_skipped_times_are_not_slots() {
        // Europe/Rome skips 02:00–03:00 on 2026-03-29.
        let night = every_day(chrono_tz::Europe::Rome, vec![sitting("01:00", "05:00", None)]);
        let hour = TimeDelta::hours(1);
        let slots = night.slots(date("2026-03-29"), hour);
        let wall_clock: Vec<String> =
            slots.iter().map(|slot| slot.with_timezone(&chrono_tz::Europe::Rome).format("%H:%M").to_string()).collect();
        assert_eq!(wall_clock, ["01:00", "01:15", "01:30", "01:45", "03:00", "03:15", "03:30", "03:45", "04:00"]);
        // 01:45 CET + 60 real minutes is 03:45 CEST: it still ends by 05:00.
        assert_eq!(night.check(at("2026-03-29T01:45:00+01:00"), hour), Ok(()));
        // The last hour of the night: 04:00 CEST + 1 h = 05:00 exactly.
        assert_eq!(night.check(at("2026-03-29T04:00:00+02:00"), hour), Ok(()));
        assert!(matches!(night.check(at("2026-03-29T04:15:00+02:00"), hour), Err(ScheduleError::PastClosing { .. })));
    }

    #[test]
    fn on_the_day_clocks_go_back_a_repeated_time_is_two_slots() {
        // Europe/Rome repeats 02:00–03:00 on 2026-10-25, first in CEST (+02:00), then in CET (+01:00).
        let night = every_day(chrono_tz::Europe::Rome, vec![sitting("01:00", "03:00", None)]);
        let quarter = TimeDelta::minutes(15);
        let slots = night.slots(date("2026-10-25"), quarter);
        assert!(slots.contains(&at("2026-10-25T02:30:00+02:00")));
        assert!(slots.contains(&at("2026-10-25T02:30:00+01:00")));
        // 01:00 to 03:00 wall clock is three real hours that day: 12 slots of 15 minutes.
        assert_eq!(slots.len(), 12);
        // Closing is the later 03:00: a stay may run until then.
        assert_eq!(night.check(at("2026-10-25T02:45:00+01:00"), quarter), Ok(()));
        assert_eq!(night.check(at("2026-10-25T02:45:00+02:00"), TimeDelta::minutes(75)), Ok(()));
        assert!(matches!(
            night.check(at("2026-10-25T02:45:00+01:00"), TimeDelta::minutes(30)),
            Err(ScheduleError::PastClosing { .. })
        ));
    }
}
