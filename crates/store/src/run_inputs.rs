//! A run's inputs, kept for replay, with their personal part sealed.
//!
//! `evaluation_runs.inputs` holds everything a decision was computed from, so that
//! `dossier replay` can compute it again. The applicants' part (identity scores and
//! flags, bankruptcy filings, verified income and debts, sanctions screening) is
//! personal data: it is taken out, sealed under the active key bound to the run, and
//! stored in `inputs_sealed`; the rest (property, valuation, licence, registry,
//! financing) stays queryable jsonb.

use serde_json::Value;
use uuid::Uuid;

use super::StoreError;
use super::crypto::{Sealed, Vault, context};

/// The member of the inputs that is sealed.
const PERSONAL: &str = "applicants";

/// The inputs to store in the clear, and their personal part sealed (None when the
/// inputs have none).
pub fn seal(vault: &Vault, run_id: Uuid, inputs: &Value) -> (Value, Option<Sealed>) {
    let mut public = inputs.clone();
    let personal = public
        .as_object_mut()
        .and_then(|o| o.insert(PERSONAL.to_owned(), Value::Null))
        .filter(|v| !v.is_null());
    let sealed = personal.map(|p| {
        let text = serde_json::to_vec(&p).expect("JSON values serialise");
        vault.seal(&text, &context::run_inputs(run_id))
    });
    (public, sealed)
}

/// The whole inputs again, from what [`seal`] stored. Inputs stored in the clear by
/// earlier releases (no sealed part) come back as they are.
pub fn open(
    vault: &Vault,
    run_id: Uuid,
    public: Option<Value>,
    sealed: Option<Vec<u8>>,
    key_id: Option<String>,
) -> Result<Option<Value>, StoreError> {
    let (Some(mut inputs), Some(bytes), Some(key_id)) = (public.clone(), sealed, key_id) else {
        return Ok(public);
    };
    let text = vault.open(&Sealed { key_id, bytes }, &context::run_inputs(run_id))?;
    let personal: Value = serde_json::from_slice(&text).map_err(|e| {
        StoreError::Corrupt(format!(
            "the sealed inputs of run {run_id} are not JSON: {e}"
        ))
    })?;
    match inputs.as_object_mut() {
        Some(o) => {
            o.insert(PERSONAL.to_owned(), personal);
            Ok(Some(inputs))
        }
        None => Err(StoreError::Corrupt(format!(
            "the inputs of run {run_id} are not a JSON object"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn the_personal_part_is_sealed_to_its_run_and_comes_back() {
        let vault = Vault::ephemeral();
        let run = Uuid::now_v7();
        let inputs = json!({"state": "CA", "applicants": [{"identity": {"score": 812}}]});
        let (public, sealed) = seal(&vault, run, &inputs);
        assert_eq!(public, json!({"state": "CA", "applicants": null}));
        let sealed = sealed.expect("applicants are sealed");
        assert!(!String::from_utf8_lossy(&sealed.bytes).contains("812"));
        let back = open(
            &vault,
            run,
            Some(public.clone()),
            Some(sealed.bytes.clone()),
            Some(sealed.key_id.clone()),
        )
        .unwrap();
        assert_eq!(back, Some(inputs));
        // Bound to its run: under another run's id it does not open.
        let other = open(
            &vault,
            Uuid::now_v7(),
            Some(public),
            Some(sealed.bytes),
            Some(sealed.key_id),
        );
        assert!(other.is_err());
        // Inputs of earlier releases, all in the clear, come back unchanged.
        let legacy = json!({"applicants": [{"identity": {"score": 700}}]});
        assert_eq!(
            open(&vault, run, Some(legacy.clone()), None, None).unwrap(),
            Some(legacy)
        );
        // Nothing personal: nothing sealed.
        assert!(seal(&vault, run, &json!({"state": "CA"})).1.is_none());
    }
}
