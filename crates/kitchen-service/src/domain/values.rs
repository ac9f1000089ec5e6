//! Value types of a ticket: once built, they are valid.

use service_kit::values::ValueError;

service_kit::bounded_text!(
    /// Why the kitchen rejected a ticket: 1 to 500 characters.
    RejectReason, "the reason", 500, required: true, multiline: true
);
service_kit::bounded_text!(
    /// What the guest asked for on a line, such as `no onions`: up to 500 characters.
    Notes, "the notes", 500, required: false, multiline: true
);

/// How many portions a line asks for: 1 to [`Quantity::MAX`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Quantity(u32);

impl Quantity {
    /// The most portions of one line.
    pub const MAX: u32 = 1000;

    /// The number of portions.
    pub const fn get(self) -> u32 {
        self.0
    }
}

impl TryFrom<u32> for Quantity {
    type Error = ValueError;

    fn try_from(quantity: u32) -> Result<Self, Self::Error> {
        if (1..=Self::MAX).contains(&quantity) {
            Ok(Self(quantity))
        } else {
            Err(ValueError(format!("the quantity must be between 1 and {}, not {quantity}", Self::MAX)))
        }
    }
}

impl TryFrom<i32> for Quantity {
    type Error = ValueError;

    fn try_from(quantity: i32) -> Result<Self, Self::Error> {
        u32::try_from(quantity)
            .map_err(|_| ValueError(format!("the quantity must be between 1 and {}, not {quantity}", Self::MAX)))
            .and_then(Self::try_from)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_reject_reason_is_said_in_one_to_five_hundred_characters() {
        let reason = |text: &str| RejectReason::try_from(text.to_owned()).map(|r| r.as_str().to_owned());
        assert_eq!(reason(" out of fish "), Ok("out of fish".to_owned()));
        assert_eq!(reason("  "), Err(ValueError("the reason must not be empty".to_owned())));
        assert!(reason(&"x".repeat(500)).is_ok());
        assert_eq!(reason(&"x".repeat(501)), Err(ValueError("the reason must be at most 500 characters".to_owned())));
    }

    #[test]
    fn quantities_are_one_to_a_thousand_portions() {
        assert_eq!(Quantity::try_from(1_u32).map(Quantity::get), Ok(1));
        assert_eq!(Quantity::try_from(1000_i32).map(Quantity::get), Ok(1000));
        for bad in [0, 1001, -1] {
            assert!(Quantity::try_from(bad).is_err(), "{bad} accepted");
        }
    }
}
