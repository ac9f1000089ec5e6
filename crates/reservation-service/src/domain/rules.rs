//! The restaurant's booking rules as staff set them: its schedule, its
//! seats, and the limits of a booking's life. One document, versioned,
//! stored by the service and changed through the API; the environment only
//! gives a fresh platform its first version.

use super::schedule::{GRAIN_MINUTES, Hours, Schedule, Sitting, TimeOfDay};
use super::values::Duration;
use chrono::{NaiveDate, TimeDelta};
use serde::{Deserialize, Serialize};
use service_kit::values::{FieldError, ValueError};
use std::collections::BTreeMap;

/// The rules every booking and status change is checked against.
#[derive(Debug, Clone, PartialEq)]
pub struct Rules {
    /// When parties are taken.
    pub schedule: Schedule,
    /// Seats in the restaurant: the most guests booked for any moment.
    pub seats: u32,
    /// The largest party taken online, at most [`Self::seats`].
    pub max_party_size: u16,
    /// How long a table is held when a booking does not say.
    pub default_duration: Duration,
    /// How long before its start a booking must be made.
    pub lead_time: TimeDelta,
    /// How far ahead bookings open.
    pub horizon: TimeDelta,
    /// How many upcoming bookings one email address or phone number may hold.
    pub max_upcoming_per_guest: u16,
    /// How long a pending booking holds its seats unconfirmed.
    pub pending_expiry: TimeDelta,
    /// How long before its start a party may be seated.
    pub seating_opens: TimeDelta,
    /// How long after its start a confirmed party that has not come may be marked a no-show.
    pub no_show_grace: TimeDelta,
}

/// The rules as JSON: what `GET /api/v1/restaurant` shows, `PUT` takes and
/// the database keeps.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RulesDocument {
    /// The IANA time zone the hours are in.
    #[schema(example = "Europe/Rome")]
    pub time_zone: String,
    /// Minutes between bookable starts: 5 to 120, a multiple of 5.
    #[schema(minimum = 5, maximum = 120, example = 15)]
    pub slot_minutes: u16,
    /// Seats in the restaurant, 1 to 100000.
    #[schema(minimum = 1, maximum = 100_000, example = 40)]
    pub seats: u32,
    /// The largest party taken online, 1 to `seats`.
    #[schema(minimum = 1, example = 12)]
    pub max_party_size: u16,
    /// Minutes a table is held when a booking does not say, 15 to 480.
    #[schema(minimum = 15, maximum = 480, example = 90)]
    pub default_duration_minutes: u32,
    /// Minutes before its start a booking must be made, 0 to 10080.
    #[schema(minimum = 0, maximum = 10_080, example = 30)]
    pub lead_time_minutes: u32,
    /// Days ahead bookings open, 1 to 3650.
    #[schema(minimum = 1, maximum = 3650, example = 90)]
    pub horizon_days: u16,
    /// Upcoming bookings one email address or phone number may hold, 1 to 1000.
    #[schema(minimum = 1, maximum = 1000, example = 3)]
    pub max_upcoming_per_guest: u16,
    /// Minutes a pending booking holds its seats unconfirmed, 1 to 10080.
    #[schema(minimum = 1, maximum = 10_080, example = 30)]
    pub pending_expiry_minutes: u32,
    /// Minutes before its start a party may be seated, 0 to 240.
    #[schema(minimum = 0, maximum = 240, example = 30)]
    pub seating_opens_minutes: u32,
    /// Minutes after its start before a confirmed party that has not come may be marked a no-show, 0 to 240.
    #[schema(minimum = 0, maximum = 240, example = 15)]
    pub no_show_grace_minutes: u32,
    /// Sittings by weekday (`monday` … `sunday`); a day left out is closed.
    #[schema(value_type = BTreeMap<String, Vec<SittingDocument>>)]
    pub weekly_hours: BTreeMap<String, Vec<SittingDocument>>,
    /// Dates (in the restaurant's zone) whose hours differ from their weekday's; no sittings is closed.
    #[serde(default)]
    pub exceptions: Vec<ExceptionDocument>,
}

/// One sitting, times as `HH:MM` on the 5-minute grid.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = Sitting)]
pub struct SittingDocument {
    /// When it opens.
    #[schema(example = "19:00")]
    pub opens: String,
    /// When it closes (up to `24:00`); every stay ends by then.
    #[schema(example = "23:00")]
    pub closes: String,
    /// The last start taken, if earlier than a stay's length before closing.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(example = "21:30")]
    pub last_seating: Option<String>,
}

/// Hours of one date that differ from its weekday's.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = Exception)]
pub struct ExceptionDocument {
    /// The date.
    #[schema(value_type = String, format = Date, example = "2026-12-25")]
    pub date: NaiveDate,
    /// Its sittings; none means closed.
    pub hours: Vec<SittingDocument>,
}

/// The weekdays' names in the document, Monday first.
pub const WEEKDAYS: [&str; 7] = ["monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday"];

/// The most dates with their own hours.
const MAX_EXCEPTIONS: usize = 1000;
/// The most sittings in a day.
const MAX_SITTINGS: usize = 10;

fn invalid(field: impl Into<String>, detail: impl Into<String>) -> FieldError {
    FieldError { field: field.into(), source: ValueError(detail.into()) }
}

fn within<T: PartialOrd + std::fmt::Display + Copy>(field: &str, value: T, low: T, high: T) -> Result<T, FieldError> {
    if value < low || value > high {
        return Err(invalid(field, format!("must be between {low} and {high}")));
    }
    Ok(value)
}

fn minutes(value: u32) -> TimeDelta {
    TimeDelta::minutes(i64::from(value))
}

impl RulesDocument {
    /// The rules it describes.
    ///
    /// # Errors
    /// The first field that breaks a rule, named by its path.
    pub fn parse(&self) -> Result<Rules, FieldError> {
        let time_zone = self.time_zone.parse::<chrono_tz::Tz>().map_err(|_| {
            invalid("time_zone", format!("{:?} is not an IANA time zone such as Europe/Rome", self.time_zone))
        })?;
        let slot_minutes = within("slot_minutes", self.slot_minutes, GRAIN_MINUTES, 120)?;
        if !slot_minutes.is_multiple_of(GRAIN_MINUTES) {
            return Err(invalid("slot_minutes", format!("must be a multiple of {GRAIN_MINUTES}")));
        }
        let seats = within("seats", self.seats, 1, 100_000)?;
        let largest = u16::try_from(seats).unwrap_or(u16::MAX);
        let max_party_size = within("max_party_size", self.max_party_size, 1, largest)?;
        let default_duration = Duration::try_from(i64::from(self.default_duration_minutes))
            .map_err(|source| FieldError { field: "default_duration_minutes".to_owned(), source })?;
        if let Some(day) = self.weekly_hours.keys().find(|day| !WEEKDAYS.contains(&day.as_str())) {
            return Err(invalid(format!("weekly_hours.{day}"), "is not a weekday: use monday … sunday"));
        }
        let weekly = WEEKDAYS.map(|day| self.weekly_hours.get(day).map(Vec::as_slice).unwrap_or_default());
        let mut weekly_hours: [Hours; 7] = Default::default();
        for ((hours, sittings), day) in weekly_hours.iter_mut().zip(weekly).zip(WEEKDAYS) {
            *hours = hours_of(&format!("weekly_hours.{day}"), sittings)?;
        }
        if self.exceptions.len() > MAX_EXCEPTIONS {
            return Err(invalid("exceptions", format!("at most {MAX_EXCEPTIONS} dates")));
        }
        let mut exceptions = BTreeMap::new();
        for (index, exception) in self.exceptions.iter().enumerate() {
            let hours = hours_of(&format!("exceptions[{index}].hours"), &exception.hours)?;
            if exceptions.insert(exception.date, hours).is_some() {
                return Err(invalid(format!("exceptions[{index}].date"), format!("{} is given twice", exception.date)));
            }
        }
        Ok(Rules {
            schedule: Schedule { time_zone, slot_minutes, weekly: weekly_hours, exceptions },
            seats,
            max_party_size,
            default_duration,
            lead_time: minutes(within("lead_time_minutes", self.lead_time_minutes, 0, 10_080)?),
            horizon: TimeDelta::days(i64::from(within("horizon_days", self.horizon_days, 1, 3650)?)),
            max_upcoming_per_guest: within("max_upcoming_per_guest", self.max_upcoming_per_guest, 1, 1000)?,
            pending_expiry: minutes(within("pending_expiry_minutes", self.pending_expiry_minutes, 1, 10_080)?),
            seating_opens: minutes(within("seating_opens_minutes", self.seating_opens_minutes, 0, 240)?),
            no_show_grace: minutes(within("no_show_grace_minutes", self.no_show_grace_minutes, 0, 240)?),
        })
    }
}

fn hours_of(field: &str, sittings: &[SittingDocument]) -> Result<Hours, FieldError> {
    if sittings.len() > MAX_SITTINGS {
        return Err(invalid(field, format!("at most {MAX_SITTINGS} sittings a day")));
    }
    let parsed = sittings
        .iter()
        .enumerate()
        .map(|(index, sitting)| {
            let field = format!("{field}[{index}]");
            let time =
                |name: &str, text: &str| TimeOfDay::parse(text).map_err(|e| invalid(format!("{field}.{name}"), e));
            let opens = time("opens", &sitting.opens)?;
            let closes = time("closes", &sitting.closes)?;
            let last_seating = sitting.last_seating.as_deref().map(|text| time("last_seating", text)).transpose()?;
            Sitting::new(opens, closes, last_seating).map_err(|e| invalid(field, e))
        })
        .collect::<Result<Vec<_>, _>>()?;
    Hours::new(parsed).map_err(|e| invalid(field, e))
}

impl Rules {
    /// The rules as their document.
    pub fn document(&self) -> RulesDocument {
        let sittings = |hours: &Hours| -> Vec<SittingDocument> {
            hours
                .sittings()
                .iter()
                .map(|sitting| SittingDocument {
                    opens: sitting.opens().to_string(),
                    closes: sitting.closes().to_string(),
                    last_seating: sitting.last_seating().map(|last| last.to_string()),
                })
                .collect()
        };
        let whole_minutes = |delta: TimeDelta| u32::try_from(delta.num_minutes()).unwrap_or(0);
        RulesDocument {
            time_zone: self.schedule.time_zone.name().to_owned(),
            slot_minutes: self.schedule.slot_minutes,
            seats: self.seats,
            max_party_size: self.max_party_size,
            default_duration_minutes: self.default_duration.minutes(),
            lead_time_minutes: whole_minutes(self.lead_time),
            horizon_days: u16::try_from(self.horizon.num_days()).unwrap_or(u16::MAX),
            max_upcoming_per_guest: self.max_upcoming_per_guest,
            pending_expiry_minutes: whole_minutes(self.pending_expiry),
            seating_opens_minutes: whole_minutes(self.seating_opens),
            no_show_grace_minutes: whole_minutes(self.no_show_grace),
            weekly_hours: WEEKDAYS
                .iter()
                .zip(&self.schedule.weekly)
                .filter(|(_, hours)| !hours.sittings().is_empty())
                .map(|(day, hours)| ((*day).to_owned(), sittings(hours)))
                .collect(),
            exceptions: self
                .schedule
                .exceptions
                .iter()
                .map(|(date, hours)| ExceptionDocument { date: *date, hours: sittings(hours) })
                .collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn document() -> RulesDocument {
        serde_json::from_value(serde_json::json!({
            "time_zone": "Europe/Rome",
            "slot_minutes": 15,
            "seats": 40,
            "max_party_size": 12,
            "default_duration_minutes": 90,
            "lead_time_minutes": 30,
            "horizon_days": 90,
            "max_upcoming_per_guest": 3,
            "pending_expiry_minutes": 30,
            "seating_opens_minutes": 30,
            "no_show_grace_minutes": 15,
            "weekly_hours": {
                "tuesday": [{"opens": "12:00", "closes": "15:00", "last_seating": "14:00"}, {"opens": "19:00", "closes": "23:00"}],
                "saturday": [{"opens": "19:00", "closes": "24:00"}]
            },
            "exceptions": [{"date": "2026-12-25", "hours": []}]
        }))
        .unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn a_document_parses_and_prints_back_the_same() {
        let rules = document().parse().unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(rules.schedule.time_zone, chrono_tz::Europe::Rome);
        assert_eq!(rules.schedule.weekly[1].sittings().len(), 2);
        assert!(rules.schedule.weekly[0].sittings().is_empty());
        assert_eq!(rules.document(), document());
    }

    #[test]
    fn each_broken_rule_names_its_field() {
        let field = |change: fn(&mut RulesDocument)| {
            let mut document = document();
            change(&mut document);
            document.parse().map(drop).map_err(|e| e.field)
        };
        assert_eq!(field(|d| d.time_zone = "Mars/Olympus".to_owned()), Err("time_zone".to_owned()));
        assert_eq!(field(|d| d.slot_minutes = 7), Err("slot_minutes".to_owned()));
        assert_eq!(field(|d| d.max_party_size = 41), Err("max_party_size".to_owned()));
        assert_eq!(field(|d| d.default_duration_minutes = 5), Err("default_duration_minutes".to_owned()));
        assert_eq!(field(|d| d.pending_expiry_minutes = 0), Err("pending_expiry_minutes".to_owned()));
        assert_eq!(
            field(|d| {
                d.weekly_hours.insert("caturday".to_owned(), vec![]);
            }),
            Err("weekly_hours.caturday".to_owned())
        );
        assert_eq!(
            field(|d| d.weekly_hours.get_mut("tuesday").into_iter().for_each(|s| s[1].closes = "18:00".to_owned())),
            Err("weekly_hours.tuesday[1]".to_owned())
        );
        assert_eq!(
            field(|d| d.weekly_hours.get_mut("tuesday").into_iter().for_each(|s| s[1].opens = "14:30".to_owned())),
            Err("weekly_hours.tuesday".to_owned())
        );
        assert_eq!(
            field(|d| d.weekly_hours.get_mut("tuesday").into_iter().for_each(|s| s[0].opens = "12:03".to_owned())),
            Err("weekly_hours.tuesday[0].opens".to_owned())
        );
        assert_eq!(field(|d| d.exceptions.push(d.exceptions[0].clone())), Err("exceptions[1].date".to_owned()));
    }
}
