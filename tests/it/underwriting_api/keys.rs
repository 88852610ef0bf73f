//! Sealed values bound to their row, runs' personal inputs sealed, and `dossier keys
//! rotate` moving everything (old-style rows included) to a new key while replay still
//! recomputes every decision.

use std::process::Command;

use dossier_devkit::harness::{TestApp, evaluate_request};
use dossier_store::{Store, StoreError, Vault};
use uuid::Uuid;

const OLD: &str = "old:AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";
const NEW: &str = "new:HxwdHhsaGRgXFhUUExIREA8ODQwLCgkIBwYFBAMCAQA=";
const LOOKUP: &str = "ICEiIyQlJicoKSorLC0uLzAxMjM0NTY3ODk6Ozw9Pj8=";

async fn evaluate(app: &TestApp, example: &str, key: &str) -> Uuid {
    app.client()
        .await
        .evaluate_application(evaluate_request(example, key))
        .await
        .unwrap()
        .into_inner()
        .report
        .unwrap()
        .application_id
        .parse()
        .unwrap()
}

fn rotate(app: &TestApp, keys: &str, batch: &str) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_dossier"))
        .args(["keys", "rotate", "--batch", batch])
        .env("DATABASE_URL", &app.db.url)
        .env("DOSSIER_ENCRYPTION_KEYS", keys)
        .env("DOSSIER_LOOKUP_KEY", LOOKUP)
        .output()
        .expect("run dossier keys rotate");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "keys rotate failed: {stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

#[tokio::test]
async fn sealed_values_are_bound_to_their_rows_and_rotate_to_a_new_key() {
    let old = Vault::from_config(OLD, None, LOOKUP).unwrap();
    let app = TestApp::spawn_with_vault(old.clone(), |_| {}).await;
    let a = evaluate(&app, "approve", "keys-a").await;
    let b = evaluate(&app, "decline", "keys-b").await;

    // A run's personal inputs are sealed, not in `inputs`.
    let (clear, sealed): (i64, i64) = sqlx::query_as(
        "SELECT count(*) FILTER (WHERE jsonb_typeof(inputs->'applicants') = 'array'),
                count(*) FILTER (WHERE inputs_sealed IS NOT NULL)
           FROM evaluation_runs WHERE inputs IS NOT NULL",
    )
    .fetch_one(&app.pool)
    .await
    .unwrap();
    assert_eq!((clear, sealed), (0, 2));

    // An SSN copied from one application's row into another's does not open there.
    let swap = "UPDATE applicant_secrets s SET ssn_sealed = o.ssn_sealed
                  FROM applicant_secrets o
                 WHERE s.application_id = $1 AND s.position = 0
                   AND o.application_id = $2 AND o.position = 0";
    let saved: Vec<u8> = sqlx::query_scalar(
        "SELECT ssn_sealed FROM applicant_secrets WHERE application_id = $1 AND position = 0",
    )
    .bind(b)
    .fetch_one(&app.pool)
    .await
    .unwrap();
    sqlx::query(swap)
        .bind(b)
        .bind(a)
        .execute(&app.pool)
        .await
        .unwrap();
    let err = app.store.load_application(b).await.unwrap_err();
    assert!(matches!(err, StoreError::Crypto(_)), "{err:?}");
    sqlx::query(
        "UPDATE applicant_secrets SET ssn_sealed = $2 WHERE application_id = $1 AND position = 0",
    )
    .bind(b)
    .bind(&saved)
    .execute(&app.pool)
    .await
    .unwrap();
    app.store.load_application(b).await.expect("restored");

    // Rows as earlier releases wrote them: b's secrets bound to the column only, and a
    // run's inputs all in the clear.
    let loaded = app.store.load_application(b).await.unwrap().unwrap();
    let applicant = &loaded.applicants[0];
    let ssn = old.seal(applicant.ssn.expose().as_bytes(), "ssn");
    let dob = old.seal(applicant.date_of_birth.to_string().as_bytes(), "dob");
    sqlx::query(
        "UPDATE applicant_secrets SET ssn_sealed = $2, dob_sealed = $3, seal_version = 1
          WHERE application_id = $1 AND position = 0",
    )
    .bind(b)
    .bind(&ssn.bytes)
    .bind(&dob.bytes)
    .execute(&app.pool)
    .await
    .unwrap();
    let runs = app.store.decided_runs(b).await.unwrap();
    sqlx::query(
        "UPDATE evaluation_runs SET inputs = $2, inputs_sealed = NULL, inputs_key_id = NULL WHERE id = $1",
    )
    .bind(runs[0].run_id)
    .bind(sqlx::types::Json(runs[0].inputs.clone().unwrap()))
    .execute(&app.pool)
    .await
    .unwrap();
    assert_eq!(
        app.store
            .load_application(b)
            .await
            .unwrap()
            .unwrap()
            .applicants[0]
            .ssn
            .expose(),
        applicant.ssn.expose(),
        "old-style rows still open"
    );

    // Rotation, one row per batch, reporting as it goes; then nothing is left.
    let both = format!("{NEW},{OLD}");
    let out = rotate(&app, &both, "1");
    assert!(out.contains("applicant_secrets: 1 re-sealed"), "{out}");
    assert!(
        out.contains("evaluation_runs: 2 re-sealed, 0 left"),
        "{out}"
    );
    assert!(out.contains("0 left"), "{out}");
    let again = rotate(&app, &both, "500");
    assert!(
        again.contains("0 applicants, 0 runs, 0 funding checks, 0 cache entries re-sealed; 0 left"),
        "{again}"
    );
    let rows: Vec<(String, i16)> =
        sqlx::query_as("SELECT DISTINCT key_id, seal_version FROM applicant_secrets")
            .fetch_all(&app.pool)
            .await
            .unwrap();
    assert_eq!(rows, vec![("new".to_owned(), 2)]);
    let (clear, old_runs): (i64, i64) = sqlx::query_as(
        "SELECT count(*) FILTER (WHERE jsonb_typeof(inputs->'applicants') = 'array'),
                count(*) FILTER (WHERE inputs_key_id <> 'new')
           FROM evaluation_runs",
    )
    .fetch_one(&app.pool)
    .await
    .unwrap();
    assert_eq!((clear, old_runs), (0, 0));

    // The old key can go: with the new one alone every value opens and every decision
    // replays from its (unsealed) inputs.
    let new_only = Store::new(
        app.pool.clone(),
        Vault::from_config(NEW, None, LOOKUP).unwrap(),
    );
    for id in [a, b] {
        new_only.load_application(id).await.unwrap().unwrap();
        for replayed in dossier_service::underwriting::replay(&new_only, id)
            .await
            .unwrap()
        {
            assert!(replayed.matches(), "{replayed:?}");
        }
    }
    let sealed_cache: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM upstream_cache WHERE sealed IS NOT NULL AND key_id <> 'new'",
    )
    .fetch_one(&app.pool)
    .await
    .unwrap();
    assert_eq!(sealed_cache, 0);
}
