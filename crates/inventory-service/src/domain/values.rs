//! Value types parsed at the edge: once built, they are valid.

use service_kit::values::ValueError;

pub use events::inventory::Unit;

service_kit::bounded_text!(
    /// An ingredient's name: 1 to 100 characters, trimmed.
    IngredientName, "the ingredient name", 100, required: true, multiline: false
);
service_kit::bounded_text!(
    /// Free text kept with a delivery or a count, up to 500 characters.
    Note, "the note", 500, required: false, multiline: true
);
service_kit::bounded_text!(
    /// Why stock was thrown away: 1 to 500 characters.
    Reason, "the reason", 500, required: true, multiline: true
);

/// An amount of an ingredient that moves: at least one of its unit, at most
/// [`Quantity::MAX`] (a thousand tonnes in grams).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Quantity(i64);

impl Quantity {
    /// The largest quantity one movement or one recipe line may have.
    pub const MAX: i64 = 1_000_000_000_000;

    /// The quantity.
    pub const fn get(self) -> i64 {
        self.0
    }
}

impl TryFrom<i64> for Quantity {
    type Error = ValueError;

    fn try_from(quantity: i64) -> Result<Self, Self::Error> {
        if (1..=Self::MAX).contains(&quantity) {
            Ok(Self(quantity))
        } else {
            Err(ValueError(format!("the quantity must be between 1 and {}, not {quantity}", Self::MAX)))
        }
    }
}

/// An amount of an ingredient that is on hand, reserved or a threshold:
/// zero to [`StockLevel::MAX`]. The bound keeps every sum the service makes
/// far from overflowing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct StockLevel(i64);

impl StockLevel {
    /// The most of one ingredient the service keeps books for.
    pub const MAX: i64 = 1_000_000_000_000_000;
    /// Nothing.
    pub const ZERO: Self = Self(0);

    /// The level.
    pub const fn get(self) -> i64 {
        self.0
    }
}

impl TryFrom<i64> for StockLevel {
    type Error = ValueError;

    fn try_from(level: i64) -> Result<Self, Self::Error> {
        if (0..=Self::MAX).contains(&level) {
            Ok(Self(level))
        } else {
            Err(ValueError(format!("the stock level must be between 0 and {}, not {level}", Self::MAX)))
        }
    }
}

/// How many portions of a menu item an order line asks for: 1 to
/// [`Portions::MAX`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Portions(i64);

impl Portions {
    /// The most portions of one item one order may ask for.
    pub const MAX: i64 = 10_000;

    /// The number of portions.
    pub const fn get(self) -> i64 {
        self.0
    }
}

impl TryFrom<i64> for Portions {
    type Error = ValueError;

    fn try_from(portions: i64) -> Result<Self, Self::Error> {
        if (1..=Self::MAX).contains(&portions) {
            Ok(Self(portions))
        } else {
            Err(ValueError(format!("the number of portions must be between 1 and {}, not {portions}", Self::MAX)))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_trimmed_and_one_to_a_hundred_characters() {
        let name = |text: &str| IngredientName::try_from(text.to_owned()).map(|n| n.as_str().to_owned());
        assert_eq!(name("  Flour "), Ok("Flour".to_owned()));
        assert!(name("").is_err());
        assert!(name("   ").is_err());
        assert!(name(&"é".repeat(100)).is_ok());
        assert!(name(&"a".repeat(101)).is_err());
        assert!(name("flour\nsugar").is_err());
        assert!(Reason::try_from(" ".to_owned()).is_err());
        assert!(Note::try_from(String::new()).is_ok());
    }

    #[test]
    fn quantities_are_positive_levels_are_not_negative_and_both_are_bounded() {
        assert_eq!(Quantity::try_from(1).map(Quantity::get), Ok(1));
        assert_eq!(Quantity::try_from(Quantity::MAX).map(Quantity::get), Ok(Quantity::MAX));
        for bad in [0, -1, Quantity::MAX + 1, i64::MIN] {
            assert!(Quantity::try_from(bad).is_err(), "{bad} accepted");
        }
        assert_eq!(StockLevel::try_from(0), Ok(StockLevel::ZERO));
        assert_eq!(StockLevel::try_from(StockLevel::MAX).map(StockLevel::get), Ok(StockLevel::MAX));
        assert!(StockLevel::try_from(-1).is_err());
        assert!(StockLevel::try_from(StockLevel::MAX + 1).is_err());
        assert_eq!(Portions::try_from(3).map(Portions::get), Ok(3));
        assert!(Portions::try_from(0).is_err());
        assert!(Portions::try_from(Portions::MAX + 1).is_err());
        assert_eq!(
            Quantity::try_from(0),
            Err(ValueError("the quantity must be between 1 and 1000000000000, not 0".to_owned()))
        );
    }
}
