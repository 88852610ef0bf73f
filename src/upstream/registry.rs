//! Business registry (secretary of state).
//!
//! HTTP contract (served by `sim::registry`):
//! `GET {base}/v1/businesses?name=&state=` → 200 [`BusinessRecord`],
//! 404 `{"error":"business_not_found"}`.

use chrono::NaiveDate;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BusinessRecord {
    pub name: String,
    /// "ACTIVE", "SUSPENDED", "DISSOLVED".
    pub status: String,
    pub formed_on: NaiveDate,
    pub jurisdiction: String,
    pub officers: Vec<String>,
}
