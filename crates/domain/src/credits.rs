//! Credits: exact decimal quantities, and the rules that decide which lots a debit
//! spends. No I/O: the store reads the lots, these functions decide, the store writes
//! what they decided in the same transaction.
//!
//! A **lot** is one grant (a purchase, a subscription period, an admin grant). Debits
//! (consumption, admin deductions, refund take-backs) take from lots in a fixed order:
//! non-expired subscription lots first, earliest expiry first (they are lost when they
//! expire, so they go first), then pay-as-you-go lots, oldest first. An expired lot is
//! never spent and never counted.

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A quantity of credits in hundredths: `"1.50"` is `Credits(150)`. Exact, never a float.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Credits(pub i64);

/// Why a credits string was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "{0:?} is not a credit amount: use a non-negative decimal with at most two places, like \"12\" or \"1.50\""
)]
pub struct CreditsError(pub String);

/// The largest amount accepted from outside: 10^13 credits keeps every sum far inside i64.
const MAX_WHOLE_DIGITS: usize = 13;

impl Credits {
    pub const ZERO: Credits = Credits(0);

    /// `n` whole credits.
    pub fn whole(n: i64) -> Self {
        Credits(n * 100)
    }

    /// Hundredths.
    pub fn hundredths(self) -> i64 {
        self.0
    }

    /// Parses `"12"`, `"12.5"`, `"12.50"`: digits, optionally a dot and one or two
    /// digits. No sign, exponent, spaces or thousands separators: a typo must not become
    /// a different amount.
    pub fn parse(s: &str) -> Result<Self, CreditsError> {
        let err = || CreditsError(s.chars().take(40).collect());
        let (whole, frac) = s.split_once('.').unwrap_or((s, ""));
        if whole.is_empty()
            || whole.len() > MAX_WHOLE_DIGITS
            || !whole.bytes().all(|b| b.is_ascii_digit())
            || (s.contains('.') && (frac.is_empty() || frac.len() > 2))
            || !frac.bytes().all(|b| b.is_ascii_digit())
        {
            return Err(err());
        }
        let whole: i64 = whole.parse().map_err(|_| err())?;
        let frac: i64 = match frac.len() {
            0 => 0,
            1 => frac.parse::<i64>().map_err(|_| err())? * 10,
            _ => frac.parse().map_err(|_| err())?,
        };
        Ok(Credits(whole * 100 + frac))
    }
}

impl fmt::Display for Credits {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let sign = if self.0 < 0 { "-" } else { "" };
        let abs = self.0.unsigned_abs();
        write!(f, "{sign}{}.{:02}", abs / 100, abs % 100)
    }
}

impl Serialize for Credits {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

/// Credits in the OpenAPI document: a decimal string, never a JSON number (a float
/// would round). Answers always carry two places and may be negative (a debit in the
/// history); requests take `"12"`, `"12.5"` or `"12.50"`, never a sign.
#[cfg(feature = "openapi")]
impl utoipa::PartialSchema for Credits {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        use utoipa::openapi::schema::{ObjectBuilder, Type};
        ObjectBuilder::new()
            .schema_type(Type::String)
            .pattern(Some(r"^-?[0-9]{1,13}(\.[0-9]{1,2})?$"))
            .description(Some(
                "A quantity of credits as a decimal string: answers carry two places \
                 (\"12.50\", negative for debits); requests take at most two places and \
                 no sign (\"12\", \"1.5\").",
            ))
            .examples(["12.50"])
            .into()
    }
}

#[cfg(feature = "openapi")]
impl utoipa::ToSchema for Credits {}

impl<'de> Deserialize<'de> for Credits {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Credits::parse(&s).map_err(serde::de::Error::custom)
    }
}

/// Where a lot came from; decides its place in the spending order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LotSource {
    /// A paid one-time checkout.
    Purchase,
    /// A paid subscription invoice; expires at the end of the period it pays for.
    Subscription,
    /// An operator's grant.
    Admin,
    /// A promotional grant from the app (sign-up credits, a campaign): no money paid for
    /// it, so no refund takes it back; spent before paid credits of the same or a later
    /// expiry.
    Promotional,
}

impl LotSource {
    pub fn as_str(self) -> &'static str {
        match self {
            LotSource::Purchase => "purchase",
            LotSource::Subscription => "subscription",
            LotSource::Admin => "admin",
            LotSource::Promotional => "promotional",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "purchase" => Some(LotSource::Purchase),
            "subscription" => Some(LotSource::Subscription),
            "admin" => Some(LotSource::Admin),
            "promotional" => Some(LotSource::Promotional),
            _ => None,
        }
    }
}

/// What the allocation rules need to know about a lot.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LotState {
    pub id: i64,
    pub source: LotSource,
    pub remaining: i64,
    /// Unix seconds; the lot is expired from this instant on.
    pub expires_at: Option<i64>,
}

impl LotState {
    pub fn expired(&self, now: i64) -> bool {
        self.expires_at.is_some_and(|e| e <= now)
    }
}

/// The available balance: what non-expired lots hold.
pub fn available(lots: &[LotState], now: i64) -> i64 {
    // Saturating: a flood of grants (each bounded) must not wrap a balance around.
    lots.iter()
        .filter(|l| !l.expired(now))
        .fold(0i64, |sum, l| sum.saturating_add(l.remaining))
}

/// Non-expired lots with credits left, in spending order (see [`spending_key`]).
pub fn spending_order(lots: &[LotState], now: i64) -> Vec<LotState> {
    let mut order: Vec<LotState> = lots
        .iter()
        .filter(|l| !l.expired(now) && l.remaining > 0)
        .copied()
        .collect();
    order.sort_by_key(spending_key);
    order
}

/// Where a lot stands in the spending order: earliest expiry first (credits that expire
/// are lost, so they go first; lots that never expire last); at the same expiry,
/// promotional credits before subscription credits before the others; then by age (the
/// id is the age). So subscription lots go by expiry before pay-as-you-go and admin lots,
/// which never expire and go oldest first, and a promotional grant is spent before paid
/// credits of the same or a later expiry, after paid credits that expire sooner.
pub fn spending_key(l: &LotState) -> (i64, u8, i64) {
    let class = match l.source {
        LotSource::Promotional => 0,
        LotSource::Subscription => 1,
        LotSource::Purchase | LotSource::Admin => 2,
    };
    (l.expires_at.unwrap_or(i64::MAX), class, l.id)
}

/// Takes `amount` hundredths from the lots in spending order. `Err(shortfall)` when the
/// available balance is smaller; then nothing is taken.
pub fn allocate(lots: &[LotState], amount: i64, now: i64) -> Result<Vec<(i64, i64)>, i64> {
    let (takes, short) = take(spending_order(lots, now), amount);
    if short > 0 { Err(short) } else { Ok(takes) }
}

/// Takes up to `amount` from `preferred` first (the purchase a refund is for), then in
/// spending order; returns the takes and what could not be taken (a debt). Used where
/// the money is already gone (a refund) and the debit must happen regardless.
///
/// The preferred lot is taken from even when it has expired: its unused remainder was
/// never spendable, so taking it back costs the customer nothing they could still use,
/// and leaves their live credits alone. Promotional lots are never taken: no money paid
/// for them, so no money given back takes them.
pub fn take_back(
    lots: &[LotState],
    amount: i64,
    preferred: Option<i64>,
    now: i64,
) -> (Vec<(i64, i64)>, i64) {
    let mut order = spending_order(lots, now);
    order.retain(|l| l.source != LotSource::Promotional);
    if let Some(p) = preferred {
        order.retain(|l| l.id != p);
        if let Some(lot) = lots.iter().find(|l| l.id == p && l.remaining > 0) {
            order.insert(0, *lot);
        }
    }
    take(order, amount)
}

/// Credits of a proration line: `credit_amount × amount ÷ unit_amount` (the share of a
/// full period's credits that the line's money is of a full period's price, quantity
/// included), in hundredths, rounded toward zero. The unit amount is `(digits, places)`
/// as [`parse_decimal`] gives it (Stripe's `unit_amount_decimal` may have decimals).
/// `None` when the price has no usable unit amount or the result does not fit.
pub fn proration_credits(credit_amount: i64, amount: i64, unit_amount: (i64, u32)) -> Option<i64> {
    let (digits, places) = unit_amount;
    if digits <= 0 || places > 12 {
        return None;
    }
    let v = (credit_amount as i128)
        .checked_mul(100)?
        .checked_mul(amount as i128)?
        .checked_mul(10i128.pow(places))?
        / digits as i128;
    i64::try_from(v).ok()
}

/// A non-negative decimal string (`"1000"`, `"12.5"`, `"0.125"`) as `(digits, places)`:
/// `"12.5"` is `(125, 1)`. `None` for anything else.
pub fn parse_decimal(s: &str) -> Option<(i64, u32)> {
    let (whole, frac) = s.split_once('.').unwrap_or((s, ""));
    if whole.is_empty() || !whole.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    if !frac.bytes().all(|b| b.is_ascii_digit()) || frac.len() > 12 {
        return None;
    }
    let frac = frac.trim_end_matches('0');
    let digits: i64 = format!("{whole}{frac}").parse().ok()?;
    Some((digits, frac.len() as u32))
}

fn take(order: Vec<LotState>, amount: i64) -> (Vec<(i64, i64)>, i64) {
    let mut left = amount.max(0);
    let mut takes = Vec::new();
    for lot in order {
        if left == 0 {
            break;
        }
        let n = lot.remaining.min(left);
        takes.push((lot.id, n));
        left -= n;
    }
    (takes, left)
}

/// The credits a refund takes back from a purchase: the share of the lot's credits that
/// the refunded money is of the money paid, to the hundredth (half up). A refund of the
/// whole payment takes back the whole grant.
pub fn refund_share(lot_amount: i64, paid: i64, refunded: i64) -> i64 {
    if paid <= 0 || refunded <= 0 {
        return 0;
    }
    let refunded = refunded.min(paid) as i128;
    let share = (lot_amount as i128 * refunded * 2 + paid as i128) / (2 * paid as i128);
    share as i64
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn parses_and_prints_two_places() {
        for (s, v) in [
            ("0", 0),
            ("12", 1200),
            ("1.5", 150),
            ("1.50", 150),
            ("0.01", 1),
        ] {
            assert_eq!(Credits::parse(s), Ok(Credits(v)), "{s}");
        }
        for s in [
            "",
            "-1",
            "+1",
            "1.",
            ".5",
            "1.234",
            "1e3",
            " 1",
            "1,5",
            "1.5 ",
            "abc",
            "99999999999999",
        ] {
            assert!(Credits::parse(s).is_err(), "{s:?} must be refused");
        }
        assert_eq!(Credits(150).to_string(), "1.50");
        assert_eq!(Credits(-5).to_string(), "-0.05");
        assert_eq!(serde_json::to_string(&Credits(1200)).unwrap(), "\"12.00\"");
        assert_eq!(
            serde_json::from_str::<Credits>("\"0.5\"").unwrap(),
            Credits(50)
        );
        assert!(serde_json::from_str::<Credits>("1.5").is_err());
    }

    fn lot(id: i64, source: LotSource, remaining: i64, expires_at: Option<i64>) -> LotState {
        LotState {
            id,
            source,
            remaining,
            expires_at,
        }
    }

    #[test]
    fn subscription_lots_go_first_by_expiry_and_expired_ones_never() {
        let lots = [
            lot(1, LotSource::Purchase, 500, None),
            lot(2, LotSource::Subscription, 300, Some(2_000)),
            lot(3, LotSource::Subscription, 300, Some(1_500)),
            lot(4, LotSource::Subscription, 1_000, Some(900)),
            lot(5, LotSource::Admin, 100, None),
        ];
        let now = 1_000;
        assert_eq!(available(&lots, now), 1_200);
        assert_eq!(
            allocate(&lots, 700, now),
            Ok(vec![(3, 300), (2, 300), (1, 100)])
        );
        assert_eq!(allocate(&lots, 1_201, now), Err(1));
        assert_eq!(allocate(&lots, 0, now), Ok(vec![]));
    }

    #[test]
    fn the_old_systems_example_leaves_500() {
        // Subscription 1,000 (now expired), purchase 500, 800 consumed while the
        // subscription was valid: the 800 came from the subscription lot.
        let mut lots = [
            lot(1, LotSource::Subscription, 100_000, Some(2_000)),
            lot(2, LotSource::Purchase, 50_000, None),
        ];
        for (id, n) in allocate(&lots, 80_000, 1_000).unwrap() {
            lots.iter_mut().find(|l| l.id == id).unwrap().remaining -= n;
        }
        assert_eq!(available(&lots, 3_000), 50_000);
    }

    #[test]
    fn a_take_back_starts_with_its_purchase_and_reports_the_debt() {
        let lots = [
            lot(1, LotSource::Subscription, 100, Some(5_000)),
            lot(2, LotSource::Purchase, 30, None),
        ];
        assert_eq!(
            take_back(&lots, 50, Some(2), 0),
            (vec![(2, 30), (1, 20)], 0)
        );
        assert_eq!(
            take_back(&lots, 200, Some(2), 0),
            (vec![(2, 30), (1, 100)], 70)
        );
    }

    #[test]
    fn a_take_back_empties_its_expired_lot_first() {
        let lots = [
            lot(1, LotSource::Subscription, 100, Some(500)),
            lot(2, LotSource::Purchase, 300, None),
        ];
        // Lot 1 expired at 500: it is still where the refund takes from first.
        assert_eq!(
            take_back(&lots, 150, Some(1), 1_000),
            (vec![(1, 100), (2, 50)], 0)
        );
        // Not preferred, an expired lot is never touched.
        assert_eq!(take_back(&lots, 150, None, 1_000), (vec![(2, 150)], 0));
    }

    #[test]
    fn proration_credits_follow_the_money_toward_zero() {
        // Plan A, 1,000 credits for $10.00: the unused half is 500.00 credits.
        assert_eq!(proration_credits(1_000, 500, (1_000, 0)), Some(50_000));
        assert_eq!(proration_credits(3_000, 1_500, (3_000, 0)), Some(150_000));
        assert_eq!(proration_credits(3_000, -1_500, (3_000, 0)), Some(-150_000));
        // 100 credits for $30.00, a line of $0.07: 0.2333… → 0.23.
        assert_eq!(proration_credits(100, 7, (3_000, 0)), Some(23));
        assert_eq!(proration_credits(100, -7, (3_000, 0)), Some(-23));
        assert_eq!(proration_credits(100, 7, (0, 0)), None);
        // A unit amount of 12.5 cents: 10 credits per unit, a line of 25 cents → 20.00.
        assert_eq!(proration_credits(10, 25, (125, 1)), Some(2_000));
        assert_eq!(parse_decimal("12.5"), Some((125, 1)));
        assert_eq!(parse_decimal("1000"), Some((1000, 0)));
        assert_eq!(parse_decimal("1000.00"), Some((1000, 0)));
        assert_eq!(parse_decimal("-1"), None);
        assert_eq!(parse_decimal("1e3"), None);
    }

    #[test]
    fn a_balance_saturates_instead_of_wrapping() {
        let lot = |id, remaining| LotState {
            id,
            source: LotSource::Promotional,
            remaining,
            expires_at: None,
        };
        assert_eq!(available(&[lot(1, i64::MAX), lot(2, 1)], 0), i64::MAX);
    }

    #[test]
    fn promotional_credits_go_before_paid_ones_of_the_same_or_a_later_expiry() {
        let lot = |id, source, expires_at| LotState {
            id,
            source,
            remaining: 100,
            expires_at,
        };
        let lots = [
            lot(1, LotSource::Purchase, None),
            lot(2, LotSource::Subscription, Some(500)),
            lot(3, LotSource::Promotional, Some(500)),
            lot(4, LotSource::Promotional, None),
            lot(5, LotSource::Subscription, Some(300)),
            lot(6, LotSource::Promotional, Some(900)),
            lot(7, LotSource::Admin, None),
        ];
        let order: Vec<i64> = spending_order(&lots, 0).iter().map(|l| l.id).collect();
        assert_eq!(order, [5, 3, 2, 6, 4, 1, 7]);
        // Refunds never take promotional credits.
        let (takes, short) = take_back(&lots, 1_000, None, 0);
        assert!(
            takes.iter().all(|(id, _)| ![3, 4, 6].contains(id)),
            "{takes:?}"
        );
        assert_eq!(short, 600);
    }

    #[test]
    fn refund_shares_are_proportional_and_rounded_half_up() {
        assert_eq!(refund_share(10_000, 2_000, 1_000), 5_000);
        assert_eq!(refund_share(10_000, 2_000, 2_000), 10_000);
        assert_eq!(refund_share(10_000, 2_000, 5_000), 10_000);
        assert_eq!(refund_share(100, 3, 1), 33);
        assert_eq!(refund_share(100, 3, 2), 67);
        assert_eq!(refund_share(100, 0, 1), 0);
        // Cumulative: 2 credits for 3 cents, refunded a cent at a time → 0.67, 1.33, 2.00.
        assert_eq!(refund_share(200, 3, 1), 67);
        assert_eq!(refund_share(200, 3, 2), 133);
        assert_eq!(refund_share(200, 3, 3), 200);
    }

    proptest! {
        #[test]
        fn allocation_takes_exactly_the_amount_from_live_lots(
            lots in prop::collection::vec((0i64..3, 0i64..10_000, prop::option::of(0i64..200)), 0..12),
            amount in 0i64..40_000,
            now in 0i64..200,
        ) {
            let lots: Vec<LotState> = lots.iter().enumerate().map(|(i, (s, r, e))| LotState {
                id: i as i64,
                source: [LotSource::Purchase, LotSource::Subscription, LotSource::Admin][*s as usize],
                remaining: *r,
                expires_at: if *s == 1 { Some(e.unwrap_or(100)) } else { *e },
            }).collect();
            match allocate(&lots, amount, now) {
                Ok(takes) => {
                    prop_assert_eq!(takes.iter().map(|t| t.1).sum::<i64>(), amount);
                    for (id, n) in takes {
                        let l = lots.iter().find(|l| l.id == id).unwrap();
                        prop_assert!(!l.expired(now));
                        prop_assert!(n > 0 && n <= l.remaining);
                    }
                }
                Err(short) => prop_assert_eq!(short, amount - available(&lots, now)),
            }
        }
    }
}
