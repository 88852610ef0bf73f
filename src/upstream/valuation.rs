//! Automated valuation model (AVM).
//!
//! HTTP contract (served by `sim::valuation`):
//! `GET {base}/v1/avm?line1=&city=&state=&postal_code=`
//! → 200 [`AvmEstimate`], 404 `{"error":"no_valuation"}` when the model has no estimate.

use chrono::NaiveDate;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AvmEstimate {
    pub value_cents: i64,
    /// 0–100.
    pub confidence: u32,
    pub low_cents: i64,
    pub high_cents: i64,
    pub as_of: NaiveDate,
}
