//! An ingredient and the rules of its stock: receipts, counts and waste,
//! and when it is low.

use super::error::DomainError;
use super::recipe::Stock;
use super::values::{IngredientName, Note, Quantity, Reason, StockLevel, Unit};
use chrono::{DateTime, Utc};
use events::{IngredientId, InventoryEvent};

/// An ingredient the restaurant stocks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ingredient {
    /// Its id.
    pub id: IngredientId,
    /// Its name, unique in the restaurant whatever the case.
    pub name: IngredientName,
    /// What its quantities count.
    pub unit: Unit,
    /// On the shelves.
    pub on_hand: StockLevel,
    /// Held for orders; never more than `on_hand`.
    pub reserved: StockLevel,
    /// At or below this much available the ingredient is low.
    pub low_stock_threshold: StockLevel,
    /// Whether `IngredientLowStock` was published and not yet re-armed by
    /// the stock rising above the threshold.
    pub low_stock: bool,
    /// Bumped by every change; the `ETag` and the events' version.
    pub version: i64,
    /// When it was created.
    pub created_at: DateTime<Utc>,
    /// When it last changed.
    pub updated_at: DateTime<Utc>,
}

impl Ingredient {
    /// A new ingredient with nothing on hand, and its `IngredientCreated`.
    pub fn create(
        name: IngredientName,
        unit: Unit,
        low_stock_threshold: StockLevel,
        now: DateTime<Utc>,
    ) -> (Self, InventoryEvent) {
        let event = InventoryEvent::IngredientCreated {
            name: name.as_str().to_owned(),
            unit,
            low_stock_threshold: low_stock_threshold.get(),
        };
        let ingredient = Self {
            id: IngredientId::new(),
            name,
            unit,
            on_hand: StockLevel::ZERO,
            reserved: StockLevel::ZERO,
            low_stock_threshold,
            low_stock: false,
            version: 1,
            created_at: now,
            updated_at: now,
        };
        (ingredient, event)
    }

    /// Its stock as the rules see it.
    pub const fn stock(&self) -> Stock {
        Stock { on_hand: self.on_hand.get(), reserved: self.reserved.get() }
    }

    /// What new holds may take: on hand less reserved.
    pub const fn available(&self) -> i64 {
        self.stock().available()
    }

    /// A delivery of `quantity` arrived.
    ///
    /// # Errors
    /// [`DomainError::StockTooLarge`] if on hand would exceed [`StockLevel::MAX`].
    pub fn receive(
        &mut self,
        quantity: Quantity,
        note: Option<&Note>,
        now: DateTime<Utc>,
    ) -> Result<InventoryEvent, DomainError> {
        let on_hand = StockLevel::try_from(self.on_hand.get().saturating_add(quantity.get()))
            .map_err(|_| DomainError::StockTooLarge { max: StockLevel::MAX })?;
        self.set_on_hand(on_hand, now);
        Ok(InventoryEvent::StockReceived {
            quantity: quantity.get(),
            on_hand: on_hand.get(),
            note: note.map(|note| note.as_str().to_owned()),
        })
    }

    /// Someone counted `on_hand` on the shelves.
    ///
    /// # Errors
    /// [`DomainError::BelowReserved`] if that is less than orders hold; the
    /// caller fills in which orders.
    pub fn count(
        &mut self,
        on_hand: StockLevel,
        note: Option<&Note>,
        now: DateTime<Utc>,
    ) -> Result<InventoryEvent, DomainError> {
        let on_hand = self.level_covering_reserved(on_hand.get())?;
        let previous_on_hand = self.on_hand.get();
        self.set_on_hand(on_hand, now);
        Ok(InventoryEvent::StockCounted {
            on_hand: on_hand.get(),
            previous_on_hand,
            note: note.map(|note| note.as_str().to_owned()),
        })
    }

    /// `quantity` was thrown away for `reason`.
    ///
    /// # Errors
    /// [`DomainError::BelowReserved`] if that would leave less than orders
    /// hold (or less than nothing); the caller fills in which orders.
    pub fn waste(
        &mut self,
        quantity: Quantity,
        reason: &Reason,
        now: DateTime<Utc>,
    ) -> Result<InventoryEvent, DomainError> {
        let on_hand = self.level_covering_reserved(self.on_hand.get() - quantity.get())?;
        self.set_on_hand(on_hand, now);
        Ok(InventoryEvent::StockWasted {
            quantity: quantity.get(),
            on_hand: on_hand.get(),
            reason: reason.as_str().to_owned(),
        })
    }

    /// Applies [`low_stock`] to the ingredient as it is now: updates the flag
    /// (bumping the version if it changes) and returns `IngredientLowStock`
    /// if it is due.
    pub fn refresh_low_stock(&mut self, now: DateTime<Utc>) -> Option<InventoryEvent> {
        let decision = low_stock(self.available(), self.low_stock_threshold.get(), self.low_stock);
        if decision.flagged != self.low_stock {
            self.low_stock = decision.flagged;
            self.version += 1;
            self.updated_at = now;
        }
        decision.publish.then(|| InventoryEvent::IngredientLowStock {
            ingredient_id: self.id,
            name: self.name.as_str().to_owned(),
            available: self.available(),
            threshold: self.low_stock_threshold.get(),
        })
    }

    /// `on_hand_after` as a level, if it still covers what orders hold.
    fn level_covering_reserved(&self, on_hand_after: i64) -> Result<StockLevel, DomainError> {
        let refused = || DomainError::BelowReserved { on_hand_after, reserved: self.reserved.get(), holds: Vec::new() };
        if on_hand_after < self.reserved.get() {
            return Err(refused());
        }
        StockLevel::try_from(on_hand_after).map_err(|_| refused())
    }

    fn set_on_hand(&mut self, on_hand: StockLevel, now: DateTime<Utc>) {
        self.on_hand = on_hand;
        self.version += 1;
        self.updated_at = now;
    }
}

/// What [`low_stock`] decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LowStock {
    /// The ingredient's `low_stock` flag from now on.
    pub flagged: bool,
    /// Whether to publish `IngredientLowStock` now.
    pub publish: bool,
}

/// Whether an ingredient with `available` (on hand less reserved) and
/// `threshold` is due an `IngredientLowStock`, given its `flagged` state:
/// published once when available falls to or below the threshold, then not
/// again until it has risen above it (which re-arms it, silently).
///
/// The flag is the memory of the last crossing, so the rule needs only the
/// stock after a change: whatever happened before, the event goes out once
/// per fall, also for several changes in one transaction or one that
/// crosses twice.
pub const fn low_stock(available: i64, threshold: i64, flagged: bool) -> LowStock {
    let low = available <= threshold;
    LowStock { flagged: low, publish: low && !flagged }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn flour(on_hand: i64, reserved: i64, threshold: i64) -> Ingredient {
        let level = |n| StockLevel::try_from(n).unwrap_or_else(|e| panic!("{e}"));
        let name = IngredientName::try_from("Flour".to_owned()).unwrap_or_else(|e| panic!("{e}"));
        let (mut ingredient, _) = Ingredient::create(name, Unit::Gram, level(threshold), Utc::now());
        ingredient.on_hand = level(on_hand);
        ingredient.reserved = level(reserved);
        ingredient
    }

    fn quantity(n: i64) -> Quantity {
        Quantity::try_from(n).unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn low_stock_is_published_once_per_fall_and_rearmed_above_the_threshold() {
        // (available, threshold, flagged) → (flagged, publish)
        let table = [
            ((600, 500, false), (false, false)),
            ((500, 500, false), (true, true)),
            ((100, 500, false), (true, true)),
            ((400, 500, true), (true, false)),
            ((500, 500, true), (true, false)),
            ((501, 500, true), (false, false)),
            ((0, 0, false), (true, true)),
        ];
        for ((available, threshold, flagged), (now_flagged, publish)) in table {
            assert_eq!(
                low_stock(available, threshold, flagged),
                LowStock { flagged: now_flagged, publish },
                "available {available}, threshold {threshold}, flagged {flagged}"
            );
        }
    }

    #[test]
    fn an_ingredient_falling_rising_and_falling_again_is_low_twice() {
        let mut flour = flour(1000, 0, 500);
        let now = Utc::now();
        let version = flour.version;
        assert_eq!(flour.refresh_low_stock(now), None);
        assert_eq!(flour.version, version, "nothing changed");
        let reason = Reason::try_from("spilt".to_owned()).unwrap_or_else(|e| panic!("{e}"));
        flour.waste(quantity(600), &reason, now).unwrap_or_else(|e| panic!("{e}"));
        let low = flour.refresh_low_stock(now);
        assert_eq!(
            low,
            Some(InventoryEvent::IngredientLowStock {
                ingredient_id: flour.id,
                name: "Flour".to_owned(),
                available: 400,
                threshold: 500
            })
        );
        assert_eq!(flour.version, version + 2, "the waste and the flag");
        flour.waste(quantity(100), &reason, now).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(flour.refresh_low_stock(now), None, "still low: said already");
        flour.receive(quantity(1000), None, now).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(flour.refresh_low_stock(now), None, "re-armed silently");
        assert!(!flour.low_stock);
        flour.waste(quantity(800), &reason, now).unwrap_or_else(|e| panic!("{e}"));
        assert!(flour.refresh_low_stock(now).is_some(), "a second fall is told again");
    }

    #[test]
    fn receipts_counts_and_waste_move_on_hand_and_say_so() {
        let now = Utc::now();
        let mut flour = flour(100, 30, 0);
        let note = Note::try_from("delivery 17".to_owned()).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            flour.receive(quantity(50), Some(&note), now),
            Ok(InventoryEvent::StockReceived { quantity: 50, on_hand: 150, note: Some("delivery 17".to_owned()) })
        );
        let counted = StockLevel::try_from(140).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            flour.count(counted, None, now),
            Ok(InventoryEvent::StockCounted { on_hand: 140, previous_on_hand: 150, note: None })
        );
        let reason = Reason::try_from("mice".to_owned()).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            flour.waste(quantity(110), &reason, now),
            Ok(InventoryEvent::StockWasted { quantity: 110, on_hand: 30, reason: "mice".to_owned() })
        );
        assert_eq!((flour.on_hand.get(), flour.reserved.get(), flour.version), (30, 30, 4));
    }

    #[test]
    fn counts_and_waste_never_take_on_hand_below_what_orders_hold() {
        let now = Utc::now();
        let mut flour = flour(100, 30, 0);
        let before = flour.clone();
        let level = StockLevel::try_from(29).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            flour.count(level, None, now),
            Err(DomainError::BelowReserved { on_hand_after: 29, reserved: 30, holds: vec![] })
        );
        let reason = Reason::try_from("mice".to_owned()).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            flour.waste(quantity(71), &reason, now),
            Err(DomainError::BelowReserved { on_hand_after: 29, reserved: 30, holds: vec![] })
        );
        assert!(flour.waste(quantity(101), &reason, now).is_err());
        assert_eq!(flour, before, "a refused change changes nothing");
        let mut full = self::flour(StockLevel::MAX, 0, 0);
        assert_eq!(full.receive(quantity(1), None, now), Err(DomainError::StockTooLarge { max: StockLevel::MAX }));
    }
}
