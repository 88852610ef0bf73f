//! Asking one kind of data's vendors in order (the upstreams file's `[waterfalls]`):
//! the next vendor is asked when one fails, or answers but not well enough by the
//! waterfall's rules. The answer used names its vendor and those passed over; what the
//! answers fetched from vendors cost is counted for the decision's spending.

use std::future::Future;

use dossier_core::domain::{CacheOutcome, DataSource, PassedOver, Upstream};
use dossier_core::evidence::{
    AvmEstimate, BankruptcySearch, BusinessRecord, IdentityResult, IncomeVerification,
    LicenseRecord, PropertyRecord,
};
use dossier_core::judge::Answer;
use dossier_core::plan::DataKind;
use dossier_core::policy::Policy;
use dossier_upstream::identity::PersonQuery;
use dossier_upstream::property_records::PropertyQuery;
use dossier_upstream::waterfall::Waterfall;
use dossier_upstream::{CallContext, Fetched, UpstreamError};

use super::{Underwriter, within};

/// An answer as an evaluation uses it, with what obtaining it cost.
#[derive(Debug)]
pub(crate) struct Asked<T> {
    pub answer: Answer<T>,
    /// Answers fetched from vendors (not from a cache), at each vendor's price; a
    /// vendor passed over for a weak answer was still paid.
    pub spent_cents: i64,
}

/// Asks `waterfall`'s vendors in order until one answers well enough.
///
/// When none does, the first answer found is used (a weak estimate still beats none),
/// else NOT_FOUND if a vendor said so, else the last failure.
pub(crate) async fn ask_in_order<T, Fut>(
    waterfall: &Waterfall,
    ctx: &CallContext,
    cost_cents: impl Fn(Upstream) -> i64,
    good_enough: impl Fn(&T) -> bool,
    ask_vendor: impl Fn(Upstream) -> Fut,
) -> Asked<T>
where
    Fut: Future<Output = Result<Option<Fetched<T>>, UpstreamError>>,
{
    let mut passed_over: Vec<PassedOver> = Vec::new();
    let mut spent_cents = 0;
    let mut weak: Option<Fetched<T>> = None;
    let mut not_found = false;
    let mut last_error = None;
    let pass = |passed_over: &mut Vec<PassedOver>, upstream, reason: &str| {
        passed_over.push(PassedOver {
            upstream,
            reason: reason.to_owned(),
        })
    };
    for &vendor in &waterfall.vendors {
        match within(ctx, vendor, ask_vendor(vendor)).await {
            Ok(Some(fetched)) => {
                if fetched.source.cache == CacheOutcome::Fetched {
                    spent_cents += cost_cents(vendor);
                }
                if !waterfall.next_on.low_confidence || good_enough(&fetched.value) {
                    return Asked {
                        answer: found(fetched, passed_over),
                        spent_cents,
                    };
                }
                pass(&mut passed_over, vendor, "low_confidence");
                weak.get_or_insert(fetched);
            }
            Ok(None) => {
                not_found = true;
                if !waterfall.next_on.not_found {
                    break;
                }
                pass(&mut passed_over, vendor, "not_found");
            }
            Err(e) => {
                pass(&mut passed_over, vendor, e.kind());
                // Past the caller's deadline no other vendor can answer in time either.
                let out_of_time = matches!(e, UpstreamError::DeadlineExceeded { .. });
                last_error = Some(e);
                if out_of_time {
                    break;
                }
            }
        }
    }
    let answer = match (weak, last_error) {
        (Some(fetched), _) => {
            let used = fetched.source.upstream;
            passed_over.retain(|p| p.upstream != used);
            found(fetched, passed_over)
        }
        (None, _) if not_found => Answer::NotFound,
        (None, Some(e)) => {
            let mut failed = dossier_upstream::answer_of::<T>(Err(e));
            if let Answer::Failed { message, .. } = &mut failed
                && passed_over.len() > 1
            {
                let asked: Vec<String> = passed_over
                    .iter()
                    .map(|p| format!("{} ({})", p.upstream, p.reason))
                    .collect();
                *message = format!("{message}; every vendor failed: {}", asked.join(", "));
            }
            failed
        }
        (None, None) => unreachable!("a waterfall has at least one vendor"),
    };
    Asked {
        answer,
        spent_cents,
    }
}

fn found<T>(fetched: Fetched<T>, passed_over: Vec<PassedOver>) -> Answer<T> {
    Answer::Found {
        value: fetched.value,
        source: DataSource {
            passed_over,
            ..fetched.source
        },
    }
}

/// Each kind of data, asked through its waterfall.
impl Underwriter {
    fn waterfall(&self, kind: DataKind) -> Waterfall {
        self.upstreams.waterfalls.of(kind)
    }

    fn cost(&self) -> impl Fn(Upstream) -> i64 + '_ {
        |vendor| self.upstreams.cost_cents(vendor)
    }

    pub(crate) async fn ask_property_record(
        &self,
        query: &PropertyQuery,
        ctx: &CallContext,
    ) -> Asked<PropertyRecord> {
        ask_in_order(
            &self.waterfall(DataKind::PropertyRecords),
            ctx,
            self.cost(),
            |_| true,
            |_| self.upstreams.property_records.lookup(query, ctx),
        )
        .await
    }

    /// An estimate is good enough when its confidence meets the policy's minimum.
    pub(crate) async fn ask_valuation(
        &self,
        query: &PropertyQuery,
        ctx: &CallContext,
        p: &Policy,
    ) -> Asked<AvmEstimate> {
        ask_in_order(
            &self.waterfall(DataKind::Valuation),
            ctx,
            self.cost(),
            |e: &AvmEstimate| e.confidence >= p.valuation.min_confidence,
            |vendor| self.upstreams.valuation_vendor(vendor).estimate(query, ctx),
        )
        .await
    }

    pub(crate) async fn ask_identity(
        &self,
        query: &PersonQuery,
        ctx: &CallContext,
    ) -> Asked<IdentityResult> {
        ask_in_order(
            &self.waterfall(DataKind::Identity),
            ctx,
            self.cost(),
            |_| true,
            |vendor| async move {
                let client = self.upstreams.identity_vendor(vendor);
                client.verify(query, ctx).await.map(Some)
            },
        )
        .await
    }

    /// Income comes from the identity vendors, in the identity waterfall's order.
    pub(crate) async fn ask_income(
        &self,
        query: &PersonQuery,
        ctx: &CallContext,
    ) -> Asked<IncomeVerification> {
        ask_in_order(
            &self.waterfall(DataKind::Identity),
            ctx,
            self.cost(),
            |_| true,
            |vendor| async move {
                let client = self.upstreams.identity_vendor(vendor);
                client.income(query, ctx).await.map(Some)
            },
        )
        .await
    }

    pub(crate) async fn ask_bankruptcies(
        &self,
        query: &PersonQuery,
        ctx: &CallContext,
    ) -> Asked<BankruptcySearch> {
        ask_in_order(
            &self.waterfall(DataKind::Bankruptcy),
            ctx,
            self.cost(),
            |_| true,
            |vendor| async move {
                let client = self.upstreams.identity_vendor(vendor);
                client.bankruptcies(query, ctx).await.map(Some)
            },
        )
        .await
    }

    pub(crate) async fn ask_license(
        &self,
        state: &str,
        number: &str,
        ctx: &CallContext,
    ) -> Asked<LicenseRecord> {
        ask_in_order(
            &self.waterfall(DataKind::Licensing),
            ctx,
            self.cost(),
            |_| true,
            |_| self.upstreams.licensing.license(state, number, ctx),
        )
        .await
    }

    pub(crate) async fn ask_business(
        &self,
        name: &str,
        state: &str,
        ctx: &CallContext,
    ) -> Asked<BusinessRecord> {
        ask_in_order(
            &self.waterfall(DataKind::Registry),
            ctx,
            self.cost(),
            |_| true,
            |_| self.upstreams.registry.business(name, state, ctx),
        )
        .await
    }
}
