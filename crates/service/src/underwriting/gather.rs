//! Gathering an application's data in the policy's tiers (`plan`): every question of a
//! tier at once, each check judged and recorded as soon as its data is in (so
//! WatchReport streams them). In `frugal` mode a tier that declines the application
//! ends the asking: the later tiers' checks are NOT_RUN, and what they would have cost
//! is counted as avoided.

use chrono::Utc;
use futures::FutureExt as _;
use futures::StreamExt as _;
use futures::future::BoxFuture;
use futures::stream::FuturesUnordered;
use tracing::Instrument as _;
use uuid::Uuid;

use dossier_core::domain::{Application, CheckResult, Outcome};
use dossier_core::evidence::{
    AvmEstimate, BankruptcySearch, BusinessRecord, IdentityResult, IncomeVerification,
    LicenseRecord, PropertyRecord,
};
use dossier_core::judge::{self, Answer, ApplicantInputs, RunInputs};
use dossier_core::plan::{self, DataKind, Mode, VendorCost};
use dossier_core::policy::Policy;
use dossier_sanctions::Subject;
use dossier_store::StoreError;
use dossier_upstream::CallContext;
use dossier_upstream::identity::PersonQuery;
use dossier_upstream::property_records::PropertyQuery;

use super::Underwriter;

/// What a run's checks found, from which inputs, at what vendor cost.
pub(crate) struct Gathered {
    pub results: Vec<CheckResult>,
    pub inputs: RunInputs,
    pub cost: VendorCost,
}

/// One question to the vendors; the applicant's index where it is about a person.
#[derive(Debug, Clone, Copy)]
enum Question {
    PropertyRecord,
    Valuation,
    License,
    Business,
    Identity(usize),
    Income(usize),
    Bankruptcy(usize),
}

impl Question {
    /// The questions one kind of data asks of an application with `applicants` people.
    fn of(kind: DataKind, applicants: usize) -> Vec<Question> {
        match kind {
            DataKind::Sanctions => Vec::new(),
            DataKind::Licensing => vec![Question::License],
            DataKind::Registry => vec![Question::Business],
            DataKind::PropertyRecords => vec![Question::PropertyRecord],
            DataKind::Valuation => vec![Question::Valuation],
            DataKind::Identity => (0..applicants)
                .flat_map(|i| [Question::Identity(i), Question::Income(i)])
                .collect(),
            DataKind::Bankruptcy => (0..applicants).map(Question::Bankruptcy).collect(),
        }
    }

    fn span(self) -> tracing::Span {
        let (what, applicant) = match self {
            Question::PropertyRecord => ("property_records", None),
            Question::Valuation => ("valuation", None),
            Question::License => ("licensing", None),
            Question::Business => ("registry", None),
            Question::Identity(i) => ("identity", Some(i)),
            Question::Income(i) => ("income", Some(i)),
            Question::Bankruptcy(i) => ("bankruptcy", Some(i)),
        };
        match applicant {
            None => tracing::info_span!("gather", otel.name = %format_args!("gather {what}"), what),
            Some(i) => tracing::info_span!(
                "gather",
                otel.name = %format_args!("gather {what} applicant {i}"),
                what,
                applicant = i,
            ),
        }
    }
}

/// A question's answer, to put in its place among the run's inputs.
enum Reply {
    PropertyRecord(Answer<PropertyRecord>),
    Valuation(Answer<AvmEstimate>),
    License(Answer<LicenseRecord>),
    Business(Answer<BusinessRecord>),
    Identity(usize, Answer<IdentityResult>),
    Income(usize, Answer<IncomeVerification>),
    Bankruptcy(usize, Answer<BankruptcySearch>),
}

impl Reply {
    fn apply(self, inputs: &mut RunInputs) {
        match self {
            Reply::PropertyRecord(a) => inputs.property_record = a,
            Reply::Valuation(a) => inputs.avm = a,
            Reply::License(a) => inputs.license = a,
            Reply::Business(a) => inputs.business = a,
            Reply::Identity(i, a) => inputs.applicants[i].identity = a,
            Reply::Income(i, a) => inputs.applicants[i].income = a,
            Reply::Bankruptcy(i, a) => inputs.applicants[i].bankruptcy = a,
        }
    }
}

/// Marks a kind's answers as not asked, for the decline named by `declined_by`.
fn skip(inputs: &mut RunInputs, kind: DataKind, declined_by: &[String]) {
    match kind {
        // Screened before any tier is asked, and never skipped (`plan` refuses tiers
        // that would put it after another).
        DataKind::Sanctions => {}
        DataKind::Licensing => inputs.license = Answer::not_run(declined_by),
        DataKind::Registry => inputs.business = Answer::not_run(declined_by),
        DataKind::PropertyRecords => inputs.property_record = Answer::not_run(declined_by),
        DataKind::Valuation => inputs.avm = Answer::not_run(declined_by),
        DataKind::Identity => {
            for a in &mut inputs.applicants {
                a.identity = Answer::not_run(declined_by);
                a.income = Answer::not_run(declined_by);
            }
        }
        DataKind::Bankruptcy => {
            for a in &mut inputs.applicants {
                a.bankruptcy = Answer::not_run(declined_by);
            }
        }
    }
}

impl Underwriter {
    /// Runs every check of a run: gathers in tiers, records each result once it can be
    /// judged, and returns them with the inputs they came from and the vendor cost.
    pub(crate) async fn run_checks(
        &self,
        run_id: Uuid,
        application_id: Uuid,
        app: &Application,
        ctx: &CallContext,
    ) -> Result<Gathered, StoreError> {
        let state = app.property.address.state.clone();
        let p = self.policy.for_state(&state);
        let mode = p.evaluation.mode;
        let tiers = p.evaluation.tiers(|kind| {
            let first = self.upstreams.waterfalls.of(kind).vendors[0];
            self.upstreams.cost_cents(first)
        });
        let mut inputs = self.unasked_inputs(app, p);
        let mut recorded: Vec<CheckResult> = Vec::new();
        let mut cost = VendorCost {
            mode,
            ..VendorCost::default()
        };
        let mut declined_by: Option<Vec<String>> = None;
        for (t, tier) in tiers.iter().enumerate() {
            if let Some(codes) = &declined_by {
                for &kind in tier {
                    skip(&mut inputs, kind, codes);
                    let first = self.upstreams.waterfalls.of(kind).vendors[0];
                    let requests = kind.requests(app.applicants.len()) as i64;
                    cost.avoided_cents += requests * self.upstreams.cost_cents(first);
                }
                continue;
            }
            let kinds: Vec<&str> = tier.iter().map(|k| k.as_str()).collect();
            let span = tracing::info_span!(
                "tier",
                otel.name = %format_args!("checks tier {t}"),
                tier = t,
                kinds = %kinds.join(","),
            );
            async {
                // Free checks (term, sanctions) are ready before anything is asked.
                self.record_ready(run_id, application_id, &inputs, &mut recorded)
                    .await?;
                let mut asking: FuturesUnordered<BoxFuture<'_, (Reply, i64)>> = tier
                    .iter()
                    .flat_map(|&kind| Question::of(kind, app.applicants.len()))
                    .map(|q| self.ask(q, app, ctx, p))
                    .collect();
                while let Some((reply, spent)) = asking.next().await {
                    cost.spent_cents += spent;
                    reply.apply(&mut inputs);
                    // Answers that arrived together (cache hits, fast vendors) are
                    // recorded together: one round trip instead of one each.
                    while let Some(Some((reply, spent))) = asking.next().now_or_never() {
                        cost.spent_cents += spent;
                        reply.apply(&mut inputs);
                    }
                    self.record_ready(run_id, application_id, &inputs, &mut recorded)
                        .await?;
                }
                Ok::<_, StoreError>(())
            }
            .instrument(span)
            .await?;
            if mode == Mode::Frugal {
                declined_by = plan::declined_by(&recorded);
            }
        }
        // What is left is what a decline made unnecessary.
        let mut results = recorded;
        let rest: Vec<CheckResult> = judge::judge_all(&inputs, &self.policy)
            .into_iter()
            .filter(|r| !results.iter().any(|d| same_check(d, r)))
            .collect();
        self.store
            .record_checks(run_id, application_id, &rest)
            .await?;
        results.extend(rest);
        results.sort_by(|a, b| (a.kind, &a.subject).cmp(&(b.kind, &b.subject)));
        Ok(Gathered {
            results,
            inputs,
            cost,
        })
    }

    /// The run's inputs before anything is asked: every vendor answer not asked yet,
    /// the local sanctions screens done (free, and never skipped).
    fn unasked_inputs(&self, app: &Application, p: &Policy) -> RunInputs {
        RunInputs {
            as_of: Utc::now().date_naive(),
            state: app.property.address.state.clone(),
            measures: app.measures.clone(),
            financing: app.financing,
            property_record: Answer::unasked(),
            avm: Answer::unasked(),
            applicants: app
                .applicants
                .iter()
                .map(|a| ApplicantInputs {
                    first_name: a.first_name.clone(),
                    last_name: a.last_name.clone(),
                    display_name: a.display_name(),
                    identity: Answer::unasked(),
                    bankruptcy: Answer::unasked(),
                    income: Answer::unasked(),
                    sanctions: self.screen(&a.display_name(), Subject::Person, p),
                })
                .collect(),
            license: Answer::unasked(),
            business: Answer::unasked(),
            company_sanctions: self.screen(&app.contractor.business_name, Subject::Company, p),
        }
    }

    /// Records the checks whose data is all in and that are not recorded yet. A check
    /// with data still to come judges NOT_RUN: it waits.
    async fn record_ready(
        &self,
        run_id: Uuid,
        application_id: Uuid,
        inputs: &RunInputs,
        recorded: &mut Vec<CheckResult>,
    ) -> Result<(), StoreError> {
        let ready: Vec<CheckResult> = judge::judge_all(inputs, &self.policy)
            .into_iter()
            .filter(|r| r.outcome != Outcome::NotRun)
            .filter(|r| !recorded.iter().any(|d| same_check(d, r)))
            .collect();
        self.store
            .record_checks(run_id, application_id, &ready)
            .await?;
        recorded.extend(ready);
        Ok(())
    }

    /// Asks one question through its waterfall.
    fn ask<'a>(
        &'a self,
        q: Question,
        app: &'a Application,
        ctx: &'a CallContext,
        p: &'a Policy,
    ) -> BoxFuture<'a, (Reply, i64)> {
        let span = q.span();
        let person = |i: usize| PersonQuery::of(&app.applicants[i], &app.property.address);
        Box::pin(
            async move {
                let c = &app.contractor;
                match q {
                    Question::PropertyRecord => {
                        let a = self
                            .ask_property_record(&PropertyQuery::of(&app.property), ctx)
                            .await;
                        (Reply::PropertyRecord(a.answer), a.spent_cents)
                    }
                    Question::Valuation => {
                        let a = self
                            .ask_valuation(&PropertyQuery::of(&app.property), ctx, p)
                            .await;
                        (Reply::Valuation(a.answer), a.spent_cents)
                    }
                    Question::License => {
                        let a = self
                            .ask_license(&c.license_state, &c.license_number, ctx)
                            .await;
                        (Reply::License(a.answer), a.spent_cents)
                    }
                    Question::Business => {
                        let a = self
                            .ask_business(&c.business_name, &c.license_state, ctx)
                            .await;
                        (Reply::Business(a.answer), a.spent_cents)
                    }
                    Question::Identity(i) => {
                        let a = self.ask_identity(&person(i), ctx).await;
                        (Reply::Identity(i, a.answer), a.spent_cents)
                    }
                    Question::Income(i) => {
                        let a = self.ask_income(&person(i), ctx).await;
                        (Reply::Income(i, a.answer), a.spent_cents)
                    }
                    Question::Bankruptcy(i) => {
                        let a = self.ask_bankruptcies(&person(i), ctx).await;
                        (Reply::Bankruptcy(i, a.answer), a.spent_cents)
                    }
                }
            }
            .instrument(span),
        )
    }
}

fn same_check(a: &CheckResult, b: &CheckResult) -> bool {
    a.kind == b.kind && a.subject == b.subject
}
