//! Value types parsed at the edge: once built, they are valid.

use service_kit::values::ValueError;

service_kit::bounded_text!(
    /// The guest's name: 1 to 100 characters, trimmed.
    GuestName, "the guest name", 100, required: true, multiline: false
);
service_kit::bounded_text!(
    /// Free-text notes for the restaurant, up to 1000 characters.
    Notes, "the notes", 1000, required: false, multiline: true
);
service_kit::bounded_text!(
    /// Why a reservation was cancelled: 1 to 500 characters.
    CancelReason, "the reason", 500, required: true, multiline: true
);

/// An email address of the common `local@domain.tld` shape, at most 254
/// characters; the domain is lower-cased.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Email(String);

impl Email {
    /// The longest address accepted (RFC 5321's path limit less the brackets).
    pub const MAX_CHARS: usize = 254;

    /// The address.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for Email {
    type Error = ValueError;

    fn try_from(value: String) -> Result<Self, Self::Error> {
        let invalid = || ValueError(format!("{value:?} is not an email address such as ada@example.com"));
        let address = value.trim();
        if address.len() > Self::MAX_CHARS {
            return Err(ValueError(format!("an email address must be at most {} characters", Self::MAX_CHARS)));
        }
        let (local, domain) = address.split_once('@').ok_or_else(invalid)?;
        let local_ok = !local.is_empty()
            && local.len() <= 64
            && !local.starts_with('.')
            && !local.ends_with('.')
            && !local.contains("..")
            && local.chars().all(|c| c.is_alphanumeric() || "!#$%&'*+-/=?^_`{|}~.".contains(c));
        let labels: Vec<&str> = domain.split('.').collect();
        let domain_ok = labels.len() >= 2
            && labels.iter().all(|label| {
                !label.is_empty()
                    && label.len() <= 63
                    && !label.starts_with('-')
                    && !label.ends_with('-')
                    && label.chars().all(|c| c.is_alphanumeric() || c == '-')
            });
        if !(local_ok && domain_ok) {
            return Err(invalid());
        }
        Ok(Self(format!("{local}@{}", domain.to_lowercase())))
    }
}

/// A phone number as people write it: digits with optional spaces, dashes,
/// dots and parentheses, an optional leading `+`, and 6 to 15 digits (E.164).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Phone(String);

impl Phone {
    /// The number as given, trimmed.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Its digits alone: one number however it was written, as the guest
    /// index keeps it (`regexp_replace(guest_phone, '[^0-9]', '', 'g')`).
    pub fn digits(&self) -> String {
        self.0.chars().filter(char::is_ascii_digit).collect()
    }
}

impl TryFrom<String> for Phone {
    type Error = ValueError;

    fn try_from(value: String) -> Result<Self, Self::Error> {
        let number = value.trim();
        let body = number.strip_prefix('+').unwrap_or(number);
        let digits = body.chars().filter(char::is_ascii_digit).count();
        let shape_ok = body.chars().all(|c| c.is_ascii_digit() || " -.()".contains(c));
        if !shape_ok || !(6..=15).contains(&digits) {
            return Err(ValueError(format!(
                "{value:?} is not a phone number: use 6 to 15 digits, optionally with a leading + and spaces"
            )));
        }
        Ok(Self(number.to_owned()))
    }
}

/// How many guests: 1 to the largest party taken online.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct PartySize(u16);

impl PartySize {
    /// `size` guests, if it is 1 to `largest`.
    ///
    /// # Errors
    /// `size` is 0 or more than `largest`.
    pub fn new(size: i64, largest: u16) -> Result<Self, ValueError> {
        u16::try_from(size)
            .ok()
            .filter(|size| (1..=largest).contains(size))
            .map(Self)
            .ok_or_else(|| ValueError(format!("the party size must be between 1 and {largest}")))
    }

    /// The number of guests.
    pub const fn get(self) -> u16 {
        self.0
    }
}

/// How many of a pre-ordered item: 1 to [`Quantity::MAX`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Quantity(u32);

impl Quantity {
    /// The most of one item a reservation may pre-order.
    pub const MAX: u32 = 100;

    /// The quantity.
    pub const fn get(self) -> u32 {
        self.0
    }
}

impl TryFrom<i64> for Quantity {
    type Error = ValueError;

    fn try_from(quantity: i64) -> Result<Self, Self::Error> {
        u32::try_from(quantity)
            .ok()
            .filter(|quantity| (1..=Self::MAX).contains(quantity))
            .map(Self)
            .ok_or_else(|| ValueError(format!("the quantity must be between 1 and {}", Self::MAX)))
    }
}

/// How long a table is held, in whole minutes: [`Duration::MIN_MINUTES`] to
/// [`Duration::MAX_MINUTES`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Duration(u32);

impl Duration {
    /// The shortest booking.
    pub const MIN_MINUTES: u32 = 15;
    /// The longest booking.
    pub const MAX_MINUTES: u32 = 480;

    /// The minutes.
    pub const fn minutes(self) -> u32 {
        self.0
    }

    /// As a `chrono` duration.
    pub fn as_chrono(self) -> chrono::TimeDelta {
        chrono::TimeDelta::minutes(i64::from(self.0))
    }
}

impl TryFrom<i64> for Duration {
    type Error = ValueError;

    fn try_from(minutes: i64) -> Result<Self, Self::Error> {
        u32::try_from(minutes)
            .ok()
            .filter(|minutes| (Self::MIN_MINUTES..=Self::MAX_MINUTES).contains(minutes))
            .map(Self)
            .ok_or_else(|| {
                ValueError(format!(
                    "the duration must be between {} and {} minutes",
                    Self::MIN_MINUTES,
                    Self::MAX_MINUTES
                ))
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn email_addresses_have_a_local_part_and_a_dotted_domain() {
        let email = |text: &str| Email::try_from(text.to_owned()).map(|e| e.as_str().to_owned());
        assert_eq!(email(" Ada.Lovelace+booking@Example.COM "), Ok("Ada.Lovelace+booking@example.com".to_owned()));
        for bad in ["", "ada", "ada@", "@example.com", "ada@example", "ada@@example.com", "a b@example.com"] {
            assert!(email(bad).is_err(), "{bad:?} accepted");
        }
        for bad in ["ada@-example.com", "ada@example..com", ".ada@example.com", "ada..l@example.com"] {
            assert!(email(bad).is_err(), "{bad:?} accepted");
        }
        assert!(email(&format!("{}@example.com", "a".repeat(65))).is_err());
    }

    #[test]
    fn phone_numbers_have_six_to_fifteen_digits() {
        let phone = |text: &str| Phone::try_from(text.to_owned()).map(|p| p.as_str().to_owned());
        assert_eq!(phone(" +49 30 1234-567 "), Ok("+49 30 1234-567".to_owned()));
        assert!(phone("(030) 123.456").is_ok());
        for bad in ["", "12345", "1234567890123456", "call me", "+", "12+345678", "123456x"] {
            assert!(phone(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn numbers_are_bounded() {
        assert_eq!(PartySize::new(1, 12).map(PartySize::get), Ok(1));
        assert_eq!(PartySize::new(12, 12).map(PartySize::get), Ok(12));
        assert!(PartySize::new(0, 12).is_err());
        assert!(PartySize::new(13, 12).is_err());
        assert!(PartySize::new(-1, 12).is_err());
        assert!(PartySize::new(70_000, u16::MAX).is_err());
        assert_eq!(Quantity::try_from(1).map(Quantity::get), Ok(1));
        assert!(Quantity::try_from(0).is_err());
        assert!(Quantity::try_from(i64::from(Quantity::MAX) + 1).is_err());
        assert_eq!(Duration::try_from(90).map(Duration::minutes), Ok(90));
        assert!(Duration::try_from(14).is_err());
        assert!(Duration::try_from(481).is_err());
    }
}
