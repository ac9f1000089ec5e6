//! Value types parsed at the edge: once built, they are valid.

pub use service_kit::values::ValueError;

service_kit::bounded_text!(
    /// A menu's name: 1 to 100 characters, trimmed.
    MenuName, "the menu name", 100, required: true, multiline: false
);
service_kit::bounded_text!(
    /// An item's name: 1 to 100 characters, trimmed; unique within its menu.
    ItemName, "the item name", 100, required: true, multiline: false
);
service_kit::bounded_text!(
    /// An item's category, such as `starter`: 1 to 50 characters.
    Category, "the category", 50, required: true, multiline: false
);
service_kit::bounded_text!(
    /// Free text of up to 1000 characters; control characters other than
    /// newlines and tabs are refused.
    Description, "the description", 1000, required: false, multiline: true
);

/// An ISO 4217 currency code in use today, such as `EUR`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Currency(&'static str);

impl Currency {
    /// Every accepted code.
    pub const CODES: &'static [&'static str] = ISO_4217;

    /// The three-letter code.
    pub const fn code(&self) -> &'static str {
        self.0
    }
}

/// Active ISO 4217 codes.
const ISO_4217: &[&str] = &[
    "AED", "AFN", "ALL", "AMD", "AOA", "ARS", "AUD", "AWG", "AZN", "BAM", "BBD", "BDT", "BGN", "BHD", "BIF", "BMD",
    "BND", "BOB", "BRL", "BSD", "BTN", "BWP", "BYN", "BZD", "CAD", "CDF", "CHF", "CLP", "CNY", "COP", "CRC", "CUP",
    "CVE", "CZK", "DJF", "DKK", "DOP", "DZD", "EGP", "ERN", "ETB", "EUR", "FJD", "FKP", "GBP", "GEL", "GHS", "GIP",
    "GMD", "GNF", "GTQ", "GYD", "HKD", "HNL", "HTG", "HUF", "IDR", "ILS", "INR", "IQD", "IRR", "ISK", "JMD", "JOD",
    "JPY", "KES", "KGS", "KHR", "KMF", "KPW", "KRW", "KWD", "KYD", "KZT", "LAK", "LBP", "LKR", "LRD", "LSL", "LYD",
    "MAD", "MDL", "MGA", "MKD", "MMK", "MNT", "MOP", "MRU", "MUR", "MVR", "MWK", "MXN", "MYR", "MZN", "NAD", "NGN",
    "NIO", "NOK", "NPR", "NZD", "OMR", "PAB", "PEN", "PGK", "PHP", "PKR", "PLN", "PYG", "QAR", "RON", "RSD", "RUB",
    "RWF", "SAR", "SBD", "SCR", "SDG", "SEK", "SGD", "SHP", "SLE", "SOS", "SRD", "SSP", "STN", "SVC", "SYP", "SZL",
    "THB", "TJS", "TMT", "TND", "TOP", "TRY", "TTD", "TWD", "TZS", "UAH", "UGX", "USD", "UYU", "UZS", "VES", "VND",
    "VUV", "WST", "XAF", "XCD", "XOF", "XPF", "YER", "ZAR", "ZMW", "ZWG",
];

impl TryFrom<String> for Currency {
    type Error = ValueError;

    fn try_from(value: String) -> Result<Self, Self::Error> {
        ISO_4217
            .iter()
            .find(|code| **code == value)
            .map(|code| Self(code))
            .ok_or_else(|| ValueError(format!("{value:?} is not an ISO 4217 currency code such as EUR")))
    }
}

/// An amount in whole minor units (cents), from 0 to [`Cents::MAX`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cents(i64);

impl Cents {
    /// The highest amount accepted.
    pub const MAX: i64 = 1_000_000_000;

    /// The amount.
    pub const fn get(self) -> i64 {
        self.0
    }
}

impl TryFrom<i64> for Cents {
    type Error = ValueError;

    fn try_from(cents: i64) -> Result<Self, Self::Error> {
        if (0..=Self::MAX).contains(&cents) {
            Ok(Self(cents))
        } else {
            Err(ValueError(format!("the price must be between 0 and {} minor units", Self::MAX)))
        }
    }
}

/// A price: an amount of minor units of a currency.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Price {
    cents: Cents,
    currency: Currency,
}

impl Price {
    /// `cents` minor units of `currency`.
    pub const fn new(cents: Cents, currency: Currency) -> Self {
        Self { cents, currency }
    }

    /// The same currency, another amount.
    #[must_use]
    pub const fn with_cents(self, cents: Cents) -> Self {
        Self { cents, ..self }
    }

    /// The same amount, another currency.
    #[must_use]
    pub const fn with_currency(self, currency: Currency) -> Self {
        Self { currency, ..self }
    }

    /// The amount.
    pub const fn amount(&self) -> Cents {
        self.cents
    }

    /// The amount in minor units.
    pub const fn cents(&self) -> i64 {
        self.cents.get()
    }

    /// The currency.
    pub const fn currency(&self) -> Currency {
        self.currency
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_trimmed_and_bounded() {
        assert_eq!(MenuName::try_from("  Lunch ".to_owned()).map(|n| n.as_str().to_owned()), Ok("Lunch".to_owned()));
        assert!(MenuName::try_from("   ".to_owned()).is_err());
        assert!(MenuName::try_from("x".repeat(101)).is_err());
        assert!(MenuName::try_from("x".repeat(100)).is_ok());
        assert!(ItemName::try_from("bad\u{0}name".to_owned()).is_err());
        assert!(Description::try_from(String::new()).is_ok());
        assert!(Description::try_from("line\nline".to_owned()).is_ok());
    }

    #[test]
    fn currencies_must_be_iso_4217() {
        assert_eq!(Currency::try_from("EUR".to_owned()).map(|c| c.code()), Ok("EUR"));
        for bad in ["eur", "EURO", "XYZ", ""] {
            assert!(Currency::try_from(bad.to_owned()).is_err(), "{bad} accepted");
        }
    }

    #[test]
    fn amounts_are_whole_non_negative_minor_units_up_to_the_cap() {
        assert_eq!(Cents::try_from(0).map(Cents::get), Ok(0));
        assert_eq!(Cents::try_from(Cents::MAX).map(Cents::get), Ok(Cents::MAX));
        assert!(Cents::try_from(-1).is_err());
        assert!(Cents::try_from(Cents::MAX + 1).is_err());
    }
}
