//! Which station cooks what: menu categories mapped to kitchen stations.
//!
//! The map is configured as `KITCHEN_STATIONS`, stations separated by `;`,
//! each a name, `:` and its categories separated by `,`:
//!
//! ```text
//! grill:mains,steaks;cold:starters,desserts
//! ```
//!
//! Categories are matched without regard to case or surrounding spaces. An
//! item whose category no station lists, or that the kitchen has never seen
//! on a menu, goes to the default station (`pass` unless configured).

use std::collections::HashMap;
use std::fmt;
use std::str::FromStr;

/// Menu categories mapped to the stations that cook them, and the station of
/// everything else.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StationMap {
    by_category: HashMap<String, String>,
    default: String,
}

/// A `KITCHEN_STATIONS` spec (or default station name) that cannot be read,
/// naming the part that is wrong.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StationSpecError {
    /// A part has no `:` between its station and its categories.
    #[error("{part:?} has no ':' between the station and its categories (as in grill:mains,steaks)")]
    NoColon {
        /// The part.
        part: String,
    },
    /// A station name is empty or holds other than letters, digits, `-` and `_`.
    #[error("{part:?}: the station name {station:?} must be letters, digits, '-' and '_'")]
    BadStation {
        /// The part.
        part: String,
        /// The name given.
        station: String,
    },
    /// A station lists an empty category (`grill:` or `grill:mains,,steaks`).
    #[error("{part:?} lists an empty category")]
    EmptyCategory {
        /// The part.
        part: String,
    },
    /// Two stations, or one twice, list the same category.
    #[error("the category {category:?} is listed for {first:?} and again for {second:?}")]
    CategoryTwice {
        /// The category, lower-cased.
        category: String,
        /// The station that listed it first.
        first: String,
        /// The station that listed it again.
        second: String,
    },
}

impl StationMap {
    /// The station of items no station lists, unless configured otherwise.
    pub const DEFAULT_STATION: &'static str = "pass";

    /// Reads a `KITCHEN_STATIONS` spec; the default station is
    /// [`Self::DEFAULT_STATION`]. An empty spec sends everything there; empty
    /// parts (a trailing `;`) are ignored.
    ///
    /// # Errors
    /// A part is malformed, or a category is listed twice.
    pub fn parse(spec: &str) -> Result<Self, StationSpecError> {
        let mut by_category: HashMap<String, String> = HashMap::new();
        for part in spec.split(';').map(str::trim).filter(|part| !part.is_empty()) {
            let (station, categories) =
                part.split_once(':').ok_or_else(|| StationSpecError::NoColon { part: part.to_owned() })?;
            let station = checked_station(station.trim()).ok_or_else(|| StationSpecError::BadStation {
                part: part.to_owned(),
                station: station.trim().to_owned(),
            })?;
            for category in categories.split(',').map(normalize) {
                if category.is_empty() {
                    return Err(StationSpecError::EmptyCategory { part: part.to_owned() });
                }
                if let Some(first) = by_category.get(&category) {
                    return Err(StationSpecError::CategoryTwice {
                        category,
                        first: first.clone(),
                        second: station.to_owned(),
                    });
                }
                by_category.insert(category, station.to_owned());
            }
        }
        Ok(Self { by_category, default: Self::DEFAULT_STATION.to_owned() })
    }

    /// The same map with `station` as the default station.
    ///
    /// # Errors
    /// The name is empty or holds other than letters, digits, `-` and `_`.
    pub fn with_default(self, station: &str) -> Result<Self, StationSpecError> {
        let trimmed = station.trim();
        let default = checked_station(trimmed)
            .ok_or_else(|| StationSpecError::BadStation { part: station.to_owned(), station: trimmed.to_owned() })?;
        Ok(Self { default: default.to_owned(), ..self })
    }

    /// The station that cooks items of `category`; the default station for
    /// an unlisted category or none.
    pub fn station_for(&self, category: Option<&str>) -> &str {
        category.and_then(|category| self.by_category.get(&normalize(category))).unwrap_or(&self.default)
    }

    /// The station of everything no station lists.
    pub fn default_station(&self) -> &str {
        &self.default
    }

    /// Every station, sorted by name, the default one included.
    pub fn stations(&self) -> Vec<&str> {
        let mut stations: Vec<&str> =
            self.by_category.values().map(String::as_str).chain([self.default.as_str()]).collect();
        stations.sort_unstable();
        stations.dedup();
        stations
    }
}

impl Default for StationMap {
    /// Everything goes to [`StationMap::DEFAULT_STATION`].
    fn default() -> Self {
        Self { by_category: HashMap::new(), default: Self::DEFAULT_STATION.to_owned() }
    }
}

impl FromStr for StationMap {
    type Err = StationSpecError;

    fn from_str(spec: &str) -> Result<Self, Self::Err> {
        Self::parse(spec)
    }
}

impl fmt::Display for StationMap {
    /// The spec this map reads from, stations and categories sorted.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut stations: HashMap<&str, Vec<&str>> = HashMap::new();
        for (category, station) in &self.by_category {
            stations.entry(station).or_default().push(category);
        }
        let mut parts: Vec<String> = stations
            .into_iter()
            .map(|(station, mut categories)| {
                categories.sort_unstable();
                format!("{station}:{}", categories.join(","))
            })
            .collect();
        parts.sort_unstable();
        f.write_str(&parts.join(";"))
    }
}

fn normalize(category: &str) -> String {
    category.trim().to_lowercase()
}

fn checked_station(station: &str) -> Option<&str> {
    let valid = !station.is_empty() && station.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
    valid.then_some(station)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parsed(spec: &str) -> StationMap {
        StationMap::parse(spec).unwrap_or_else(|e| panic!("{spec:?}: {e}"))
    }

    #[test]
    fn categories_go_to_their_station_whatever_their_case_and_the_rest_to_the_pass() {
        let stations = parsed(" grill : Mains, steaks ;cold:starters,desserts;");
        assert_eq!(stations.station_for(Some("mains")), "grill");
        assert_eq!(stations.station_for(Some("  STEAKS ")), "grill");
        assert_eq!(stations.station_for(Some("Desserts")), "cold");
        assert_eq!(stations.station_for(Some("drinks")), "pass");
        assert_eq!(stations.station_for(None), "pass");
        assert_eq!(stations.stations(), ["cold", "grill", "pass"]);
        assert_eq!(stations.to_string(), "cold:desserts,starters;grill:mains,steaks");
    }

    #[test]
    fn an_empty_spec_sends_everything_to_the_default_station() {
        assert_eq!(parsed(""), StationMap::default());
        assert_eq!(parsed(" ; ").station_for(Some("mains")), "pass");
        let expo = parsed("grill:mains").with_default("expo").unwrap_or_else(|e| panic!("{e}"));
        assert_eq!((expo.station_for(Some("soup")), expo.station_for(Some("mains"))), ("expo", "grill"));
        assert_eq!(expo.default_station(), "expo");
    }

    #[test]
    fn a_malformed_spec_names_the_part_that_is_wrong() {
        let error = |spec: &str| StationMap::parse(spec).err().map(|e| e.to_string());
        assert_eq!(
            error("grill:mains;cold"),
            Some("\"cold\" has no ':' between the station and its categories (as in grill:mains,steaks)".to_owned())
        );
        assert_eq!(
            error(":mains"),
            Some("\":mains\": the station name \"\" must be letters, digits, '-' and '_'".to_owned())
        );
        assert_eq!(
            error("hot grill:mains"),
            Some("\"hot grill:mains\": the station name \"hot grill\" must be letters, digits, '-' and '_'".to_owned())
        );
        assert_eq!(error("grill:"), Some("\"grill:\" lists an empty category".to_owned()));
        assert_eq!(error("grill:mains,,steaks"), Some("\"grill:mains,,steaks\" lists an empty category".to_owned()));
        assert_eq!(
            StationMap::parse("grill:mains;wok:MAINS"),
            Err(StationSpecError::CategoryTwice {
                category: "mains".to_owned(),
                first: "grill".to_owned(),
                second: "wok".to_owned(),
            })
        );
        assert!(StationMap::default().with_default(" ").is_err());
    }
}
