//! Value types of an order: once built, they are valid.

use service_kit::values::ValueError;

service_kit::bounded_text!(
    /// What the guest asked for on a line, such as `no onions`: up to 200 characters.
    Notes, "the notes", 200, required: false, multiline: true
);
service_kit::bounded_text!(
    /// The table a dine-in order is served at, such as `12`: 1 to 20 characters.
    Table, "the table", 20, required: true, multiline: false
);
service_kit::bounded_text!(
    /// Why an order was rejected, naming the items: 1 to 1000 characters.
    Reason, "the reason", 1000, required: true, multiline: true
);

/// How many portions a line asks for: 1 to [`Quantity::MAX`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Quantity(u32);

impl Quantity {
    /// The most portions of one line.
    pub const MAX: u32 = 100;

    /// The number of portions.
    pub const fn get(self) -> u32 {
        self.0
    }
}

impl TryFrom<i64> for Quantity {
    type Error = ValueError;

    fn try_from(quantity: i64) -> Result<Self, Self::Error> {
        match u32::try_from(quantity) {
            Ok(q) if (1..=Self::MAX).contains(&q) => Ok(Self(q)),
            _ => Err(ValueError(format!("the quantity must be between 1 and {}, not {quantity}", Self::MAX))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantities_are_one_to_a_hundred_and_notes_at_most_two_hundred_characters() {
        assert_eq!(Quantity::try_from(1).map(Quantity::get), Ok(1));
        assert_eq!(Quantity::try_from(100).map(Quantity::get), Ok(100));
        for bad in [0, 101, -1, i64::MAX] {
            assert!(Quantity::try_from(bad).is_err(), "{bad} accepted");
        }
        assert!(Notes::try_from("x".repeat(200)).is_ok());
        assert!(Notes::try_from("x".repeat(201)).is_err());
        assert!(Table::try_from(" ".to_owned()).is_err());
    }
}
