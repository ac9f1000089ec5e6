//! Value types parsed at the edge: once built, they are valid.
//!
//! [`bounded_text!`](crate::bounded_text) declares a text type with a length
//! bound and no stray control characters; [`ValueError`] says which rule a
//! value broke; [`parse`], [`parse_optional`] and [`one_of`] attach the request
//! field to it.

/// Why a value was refused, naming the rule it broke.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct ValueError(pub String);

/// A value refused at a request field: the field and the rule it broke.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {source}")]
pub struct FieldError {
    /// The request field, such as `items[0].currency`.
    pub field: String,
    /// The rule it broke.
    pub source: ValueError,
}

impl FieldError {
    /// `field` broke a rule described by `detail`.
    pub fn new(field: impl Into<String>, detail: impl Into<String>) -> Self {
        Self { field: field.into(), source: ValueError(detail.into()) }
    }
}

impl From<FieldError> for crate::Problem {
    fn from(error: FieldError) -> Self {
        Self::unprocessable(error.field, error.source.0)
    }
}

/// Parses request field `field` into a value type.
///
/// # Errors
/// The value breaks the type's rules.
pub fn parse<T, V>(field: impl Into<String>, value: V) -> Result<T, FieldError>
where
    T: TryFrom<V, Error = ValueError>,
{
    T::try_from(value).map_err(|source| FieldError { field: field.into(), source })
}

/// Parses an optional request field; `None` stays `None`.
///
/// # Errors
/// The value is present and breaks the type's rules.
pub fn parse_optional<T, V>(field: &str, value: Option<V>) -> Result<Option<T>, FieldError>
where
    T: TryFrom<V, Error = ValueError>,
{
    value.map(|value| parse(field, value)).transpose()
}

/// Parses request field `field` as one of `choices`, each known by its
/// `name`: a status filter, say.
///
/// # Errors
/// `value` names none of them; the error lists every name.
pub fn one_of<T: Copy>(
    field: &str,
    value: &str,
    choices: &[T],
    name: impl Fn(T) -> &'static str,
) -> Result<T, FieldError> {
    choices.iter().copied().find(|choice| name(*choice) == value).ok_or_else(|| {
        let names: Vec<&str> = choices.iter().map(|choice| name(*choice)).collect();
        FieldError::new(field, format!("{value:?} is not one of {}", names.join(", ")))
    })
}

/// A page of a list: `limit` items after skipping `offset`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Page {
    /// Page size, 1 to [`Page::MAX_LIMIT`].
    pub limit: i64,
    /// Items skipped, 0 to [`Page::MAX_OFFSET`].
    pub offset: i64,
}

impl Page {
    /// The largest page.
    pub const MAX_LIMIT: i64 = 100;
    /// The page size when none is asked for.
    pub const DEFAULT_LIMIT: i64 = 20;
    /// The most items a client may skip.
    pub const MAX_OFFSET: i64 = 1_000_000;

    /// Checks the query's `limit` and `offset`, applying the defaults.
    ///
    /// # Errors
    /// Either is out of range; the error names it.
    pub fn new(limit: Option<u16>, offset: Option<u32>) -> Result<Self, FieldError> {
        let limit = limit.map_or(Self::DEFAULT_LIMIT, i64::from);
        if !(1..=Self::MAX_LIMIT).contains(&limit) {
            return Err(FieldError::new("limit", format!("limit must be between 1 and {}", Self::MAX_LIMIT)));
        }
        let offset = offset.map_or(0, i64::from);
        if offset > Self::MAX_OFFSET {
            return Err(FieldError::new("offset", format!("offset must be at most {}", Self::MAX_OFFSET)));
        }
        Ok(Self { limit, offset })
    }
}

/// Declares a trimmed text type of at most `$max` characters without control
/// characters (`multiline` allows newlines and tabs); `required` ones must
/// hold some visible character.
///
/// ```
/// service_kit::bounded_text!(
///     /// A nickname.
///     Nickname, "the nickname", 20, required: true, multiline: false
/// );
/// assert!(Nickname::try_from(" Al ".to_owned()).is_ok_and(|n| n.as_str() == "Al"));
/// assert!(Nickname::try_from("   ".to_owned()).is_err());
/// ```
#[macro_export]
macro_rules! bounded_text {
    ($(#[$doc:meta])* $name:ident, $what:literal, $max:literal, required: $required:literal, multiline: $multiline:literal) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash)]
        pub struct $name(String);

        impl $name {
            /// The longest accepted value, in characters.
            pub const MAX_CHARS: usize = $max;

            /// The text.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl TryFrom<String> for $name {
            type Error = $crate::values::ValueError;

            fn try_from(value: String) -> Result<Self, Self::Error> {
                let trimmed = value.trim();
                if $required && trimmed.is_empty() {
                    return Err($crate::values::ValueError(format!("{} must not be empty", $what)));
                }
                if trimmed.chars().count() > $max {
                    return Err($crate::values::ValueError(format!("{} must be at most {} characters", $what, $max)));
                }
                let allowed = |c: char| $multiline && (c == '\n' || c == '\t');
                if trimmed.chars().any(|c| c.is_control() && !allowed(c)) {
                    return Err($crate::values::ValueError(format!("{} must not contain control characters", $what)));
                }
                Ok(Self(if trimmed.len() == value.len() { value } else { trimmed.to_owned() }))
            }
        }
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_of_finds_a_choice_by_name_and_lists_them_all_when_none_matches() {
        let name = |n: u8| ["held", "released"][usize::from(n)];
        assert_eq!(one_of("status", "released", &[0, 1], name), Ok(1));
        let refused = one_of("status", "Held", &[0, 1], name);
        assert_eq!(refused, Err(FieldError::new("status", "\"Held\" is not one of held, released")));
    }

    bounded_text!(
        /// A test name.
        Name, "the name", 5, required: true, multiline: false
    );
    bounded_text!(
        /// A test note.
        Note, "the note", 10, required: false, multiline: true
    );

    #[test]
    fn text_is_trimmed_bounded_and_free_of_control_characters() {
        assert_eq!(Name::try_from(" abc ".to_owned()).map(|n| n.as_str().to_owned()), Ok("abc".to_owned()));
        assert_eq!(Name::try_from("   ".to_owned()), Err(ValueError("the name must not be empty".to_owned())));
        assert!(Name::try_from("abcdef".to_owned()).is_err());
        assert!(Name::try_from("héllo".to_owned()).is_ok(), "characters, not bytes, are counted");
        assert!(Name::try_from("a\nb".to_owned()).is_err());
        assert!(Note::try_from(String::new()).is_ok());
        assert_eq!(Note::try_from("a\nb\tc".to_owned()).map(|n| n.as_str().len()), Ok(5));
        assert_eq!((Name::MAX_CHARS, Note::MAX_CHARS), (5, 10));
        assert!(Note::try_from("a\u{0}b".to_owned()).is_err());
    }

    #[test]
    fn pages_default_and_are_bounded() {
        assert_eq!(Page::new(None, None), Ok(Page { limit: 20, offset: 0 }));
        assert_eq!(Page::new(Some(100), Some(1_000_000)), Ok(Page { limit: 100, offset: 1_000_000 }));
        assert_eq!(Page::new(Some(0), None).map_err(|e| e.field), Err("limit".to_owned()));
        assert_eq!(Page::new(Some(101), None).map_err(|e| e.field), Err("limit".to_owned()));
        assert_eq!(Page::new(None, Some(1_000_001)).map_err(|e| e.field), Err("offset".to_owned()));
    }
}
