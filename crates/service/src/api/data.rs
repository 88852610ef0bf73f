//! dossier.v1.DataService: aggregated look-ups served through the same upstream clients
//! as underwriting, so other services stop calling the vendors directly.

use chrono::{NaiveDate, NaiveTime};
use tonic::{Request, Response, Status};

use super::error::{self, ApiError};
use super::{convert, validate};
use crate::proto;
use crate::proto::data_service_server::DataService;
use dossier_core::domain::{DataSource, Property, Ssn};
use dossier_upstream::identity::PersonQuery;
use dossier_upstream::property_records::PropertyQuery;
use dossier_upstream::{CallContext, Upstreams};

pub struct DataApi {
    pub upstreams: Upstreams,
    /// Person look-ups are recorded here, by a keyed hash of the SSN, before answering.
    pub access_log: dossier_store::access_log::AccessLog,
    /// Which purposes each caller may state for a person look-up.
    pub access: crate::identity::Access,
    /// Keys the person reference of the access log (the SSN look-up hash, so a look-up
    /// joins the applications of the same person).
    pub store: dossier_store::Store,
    pub sanctions: std::sync::Arc<dossier_upstream::sanctions::SanctionsList>,
    /// Candidates at or above this score are reported.
    pub sanctions_threshold: f64,
}

impl DataApi {
    /// Screens a name; UNAVAILABLE while no list is loaded (never "no match").
    fn screen(
        &self,
        name: &str,
        subject: dossier_sanctions::Subject,
    ) -> Result<(Vec<proto::SanctionsMatch>, proto::Provenance), Status> {
        if self.sanctions.version().is_none() {
            return Err(Status::unavailable(
                "no sanctions list is loaded; an operator must run `dossier sanctions load DIR`",
            ));
        }
        let answer = self
            .sanctions
            .answer(name, subject, self.sanctions_threshold);
        let matches = answer
            .value
            .iter()
            .map(|h| proto::SanctionsMatch {
                entry_id: h.entry_id,
                name: h.list_name.clone(),
                score: (h.score * 100.0).round() as i32,
                program: h.program.clone(),
            })
            .collect();
        Ok((matches, provenance(&answer.source)))
    }
}

fn provenance(s: &DataSource) -> proto::Provenance {
    let cache = convert::cache_outcome_to_proto(s.cache);
    proto::Provenance {
        upstream: s.upstream.as_str().to_owned(),
        fetched_time: Some(convert::timestamp(s.fetched_at)),
        cache: cache as i32,
    }
}

fn midnight(d: NaiveDate) -> prost_types::Timestamp {
    convert::timestamp(d.and_time(NaiveTime::MIN).and_utc())
}

fn ctx<T>(request: &Request<T>, force_refresh: bool) -> CallContext {
    let deadline = super::caller_budget(request).map(|d| std::time::Instant::now() + d);
    CallContext {
        application_id: None,
        deadline,
        force_refresh,
    }
}

fn property_type(s: &str) -> proto::PropertyType {
    use proto::PropertyType as P;
    match s {
        "SINGLE_FAMILY" => P::SingleFamily,
        "CONDOMINIUM" => P::Condominium,
        "MULTI_FAMILY" => P::MultiFamily,
        "MANUFACTURED" => P::Manufactured,
        "COMMERCIAL" => P::Commercial,
        "VACANT_LAND" => P::VacantLand,
        _ => P::Unspecified,
    }
}

#[tonic::async_trait]
impl DataService for DataApi {
    async fn get_property_profile(
        &self,
        request: Request<proto::GetPropertyProfileRequest>,
    ) -> Result<Response<proto::GetPropertyProfileResponse>, Status> {
        let r = request.get_ref();
        let mut v = validate::Violations::new();
        let address = validate::address(r.address.as_ref(), "address", &mut v);
        v.into_result(()).map_err(error::invalid_draft)?;
        let query = PropertyQuery::of(&Property {
            address,
            apn: r.apn.trim().to_owned(),
        });
        let ctx = ctx(&request, r.force_refresh);
        let (record, avm) = tokio::join!(
            self.upstreams.property_records.lookup(&query, &ctx),
            self.upstreams.valuation.estimate(&query, &ctx)
        );
        let record = record.map_err(ApiError::from)?.ok_or_else(|| {
            Status::not_found("the county has no record of this property; check the address or APN")
        })?;
        // A missing or failed valuation leaves the profile without one rather than
        // failing the whole look-up.
        let avm = match avm {
            Ok(a) => a,
            Err(e) => {
                tracing::warn!(error = %e, "valuation unavailable for a property profile");
                None
            }
        };
        let mut sources = vec![provenance(&record.source)];
        if let Some(a) = &avm {
            sources.push(provenance(&a.source));
        }
        let rec = record.value;
        let profile = proto::PropertyProfile {
            apn: rec.apn,
            address: Some(proto::Address {
                line1: rec.line1,
                line2: String::new(),
                city: rec.city,
                state: rec.state,
                postal_code: rec.postal_code,
            }),
            owners: rec.owners,
            vesting: rec.vesting,
            property_type: property_type(&rec.property_type) as i32,
            units: rec.units as i32,
            assessed_value_cents: rec.assessed_value_cents,
            annual_tax_cents: rec.annual_tax_cents,
            tax_delinquent: rec.tax.delinquent,
            tax_late_payments_5y: rec.tax.late_payments.len() as i32,
            mortgages: rec
                .mortgages
                .into_iter()
                .map(|m| proto::Mortgage {
                    lender: m.lender,
                    balance_cents: m.balance_cents,
                    days_late: m.days_late as i32,
                    late_payments_12m: m.late_payments_12m as i32,
                    notice_of_default: m.notice_of_default,
                })
                .collect(),
            liens: rec
                .liens
                .into_iter()
                .map(|l| proto::Lien {
                    kind: l.kind,
                    amount_cents: l.amount_cents,
                    record_time: Some(midnight(l.recorded_on)),
                })
                .collect(),
            assessments: rec
                .assessments
                .into_iter()
                .map(|a| proto::Assessment {
                    program: a.program,
                    balance_cents: a.balance_cents,
                    annual_payment_cents: a.annual_payment_cents,
                })
                .collect(),
            valuation: avm.map(|a| proto::Valuation {
                value_cents: a.value.value_cents,
                confidence: a.value.confidence as i32,
                low_cents: a.value.low_cents,
                high_cents: a.value.high_cents,
            }),
        };
        Ok(Response::new(proto::GetPropertyProfileResponse {
            profile: Some(profile),
            sources,
        }))
    }

    async fn get_person_profile(
        &self,
        request: Request<proto::GetPersonProfileRequest>,
    ) -> Result<Response<proto::GetPersonProfileResponse>, Status> {
        let r = request.get_ref();
        let mut v = validate::Violations::new();
        let first_name = v.required_text("first_name", &r.first_name, 100);
        let last_name = v.required_text("last_name", &r.last_name, 100);
        let ssn = Ssn::parse(&r.ssn).map_err(|why| v.add("ssn", why)).ok();
        let dob = validate::date(r.date_of_birth.as_ref());
        if dob.is_none() {
            v.add("date_of_birth", "is required and must be a calendar date");
        }
        let address = validate::address(r.address.as_ref(), "address", &mut v);
        let purpose = match proto::LookupPurpose::try_from(r.purpose) {
            Ok(proto::LookupPurpose::Unspecified) | Err(_) => {
                v.add(
                    "purpose",
                    "is required: state why the person is looked up (a LookupPurpose)",
                );
                None
            }
            Ok(purpose) => Some(purpose),
        };
        v.into_result(()).map_err(error::invalid_draft)?;
        let (Some(ssn), Some(date_of_birth), Some(purpose)) = (ssn, dob, purpose) else {
            unreachable!("validated above")
        };
        // The caller's policy may limit the purposes it can state (before any vendor
        // is asked).
        let principal = crate::identity::Principal::of_grpc(&request);
        let purpose = purpose
            .as_str_name()
            .trim_start_matches("LOOKUP_PURPOSE_")
            .to_lowercase();
        if !self.access.may_state_purpose(&principal, &purpose) {
            tracing::warn!(target: "dossier::authz", caller = %principal.caller, caller_name = %principal.name, purpose, "person look-up refused: the access policy does not allow this purpose to this caller");
            return Err(Status::permission_denied(format!(
                "this caller may not look people up for the purpose {purpose}"
            )));
        }
        let query = PersonQuery {
            first_name,
            middle_name: r.middle_name.trim().to_owned(),
            last_name,
            ssn: ssn.expose().to_owned(),
            date_of_birth,
            line1: address.line1,
            city: address.city,
            state: address.state,
            postal_code: address.postal_code,
        };
        let ctx = ctx(&request, r.force_refresh);
        let (identity, bankruptcies) = tokio::join!(
            self.upstreams.identity.verify(&query, &ctx),
            self.upstreams.identity.bankruptcies(&query, &ctx)
        );
        let identity = identity.map_err(ApiError::from)?;
        let bankruptcies = bankruptcies.map_err(ApiError::from)?;
        let full_name = [
            query.first_name.as_str(),
            query.middle_name.as_str(),
            query.last_name.as_str(),
        ]
        .iter()
        .filter(|p| !p.is_empty())
        .copied()
        .collect::<Vec<_>>()
        .join(" ");
        let (sanctions_matches, sanctions_source) =
            self.screen(&full_name, dossier_sanctions::Subject::Person)?;
        let profile = proto::PersonProfile {
            identity_score: identity.value.score as i32,
            identity_flags: identity.value.flags.clone(),
            bankruptcies: bankruptcies
                .value
                .filings
                .iter()
                .map(|f| proto::Bankruptcy {
                    chapter: f.chapter as i32,
                    filed_time: Some(midnight(f.filed_on)),
                    disposition: f.disposition.clone(),
                    closed_time: f.closed_on.map(midnight),
                })
                .collect(),
            sanctions_matches,
        };
        // Recorded before the answer leaves; no record, no answer.
        let person_ref = self.store.vault.lookup_hash("ssn", ssn.expose().as_bytes());
        super::accesses::person(
            &self.access_log,
            &principal,
            "dossier.v1.DataService/GetPersonProfile",
            person_ref,
            &purpose,
        )
        .await?;
        Ok(Response::new(proto::GetPersonProfileResponse {
            profile: Some(profile),
            sources: vec![
                provenance(&identity.source),
                provenance(&bankruptcies.source),
                sanctions_source,
            ],
        }))
    }

    async fn get_company_profile(
        &self,
        request: Request<proto::GetCompanyProfileRequest>,
    ) -> Result<Response<proto::GetCompanyProfileResponse>, Status> {
        let r = request.get_ref();
        let mut v = validate::Violations::new();
        let name = v.required_text("business_name", &r.business_name, 200);
        let number = v.required_text("license_number", &r.license_number, 20);
        let state = v.state("license_state", &r.license_state);
        v.into_result(()).map_err(error::invalid_draft)?;
        let ctx = ctx(&request, r.force_refresh);
        let (license, business) = tokio::join!(
            self.upstreams.licensing.license(&state, &number, &ctx),
            self.upstreams.registry.business(&name, &state, &ctx)
        );
        let license = license.map_err(ApiError::from)?;
        let business = business.map_err(ApiError::from)?;
        let mut sources = Vec::new();
        let (sanctions_matches, sanctions_source) =
            self.screen(&name, dossier_sanctions::Subject::Company)?;
        sources.push(sanctions_source);
        let mut profile = proto::CompanyProfile {
            license_status: "NOT_FOUND".into(),
            registration_status: "NOT_FOUND".into(),
            sanctions_matches,
            ..Default::default()
        };
        if let Some(l) = license {
            sources.push(provenance(&l.source));
            profile.license_status = l.value.status;
            profile.license_classifications = l.value.classifications;
            profile.license_expire_time = Some(midnight(l.value.expires_on));
            profile.bonded = l.value.bonded;
            profile.workers_comp = l.value.workers_comp;
            profile.licensed_name = l.value.business_name;
        }
        if let Some(b) = business {
            sources.push(provenance(&b.source));
            profile.registration_status = b.value.status;
            profile.jurisdiction = b.value.jurisdiction;
        }
        Ok(Response::new(proto::GetCompanyProfileResponse {
            profile: Some(profile),
            sources,
        }))
    }
}
