//! `dossier notice ID`: the adverse-action notice of a declined application, as text or
//! as an HTML page a person can read and print. The content is the same the report and
//! the Rails delivery carry (`dossier_core::adverse_action`); the renderers here are
//! pure functions of it, so tests check them without a database.

use std::fmt::Write as _;
use std::path::PathBuf;

use anyhow::Context as _;
use chrono::{DateTime, Utc};
use dossier_core::adverse_action::{self, Contact, NoticeContent};
use dossier_core::domain::Decision;
use dossier_store::{Store, Vault};
use uuid::Uuid;

use crate::config::DatabaseArgs;

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    Text,
    Html,
}

#[derive(Debug, clap::Args)]
pub struct Args {
    pub application_id: Uuid,
    /// Plain text, or an HTML page.
    #[arg(long, value_enum, default_value = "text")]
    pub format: Format,
    /// The notices file `serve` uses: the lender and the consumer reporting agencies.
    #[arg(long, env = "DOSSIER_NOTICES_FILE")]
    pub notices_file: Option<PathBuf>,
    #[command(flatten)]
    pub database: DatabaseArgs,
}

/// What a notice is printed from.
#[derive(Debug, Clone, PartialEq)]
pub struct Printable {
    pub application_id: Uuid,
    pub rails_application_id: Option<String>,
    pub decided_at: DateTime<Utc>,
    pub content: NoticeContent,
}

pub async fn run(args: Args) -> anyhow::Result<()> {
    let notices = crate::config::read_notices(args.notices_file.as_deref())?;
    let pool = dossier_store::connect(&args.database.url("notice")?, 2).await?;
    // A report holds no sealed data: no keys are needed to read it.
    let store = Store::new(pool, Vault::ephemeral());
    let id = args.application_id;
    let report = store
        .report(id)
        .await
        .with_context(|| format!("reading application {id}"))?
        .ok_or_else(|| anyhow::anyhow!("application {id} does not exist in this database"))?;
    let Some(decision) = report.decision.as_ref() else {
        anyhow::bail!(
            "application {id} is {}: it has no decision yet, so no notice",
            report.status.as_str()
        );
    };
    if report.final_decision() != Some(Decision::Declined) {
        anyhow::bail!(
            "application {id} is {}: only a declined application has an adverse-action notice",
            report
                .final_decision()
                .map_or("undecided", Decision::as_str)
        );
    }
    let printable = Printable {
        application_id: id,
        rails_application_id: report.rails_application_id.clone(),
        decided_at: report
            .review
            .as_ref()
            .map_or(decision.decided_at, |r| r.reviewed_at),
        content: adverse_action::content(&decision.reason_codes, &notices),
    };
    match args.format {
        Format::Text => print!("{}", text(&printable)),
        Format::Html => print!("{}", html(&printable)),
    }
    if !printable.content.is_complete() {
        eprintln!(
            "warning: this notice is incomplete (not configured: {}); do not send it as it is",
            printable.content.missing.join(", ")
        );
    }
    Ok(())
}

const TITLE: &str = "Notice of action taken on your application";
const ACTION: &str =
    "We are unable to approve your application for property-assessed (PACE) financing.";
const REPORT_INTRO: &str = "Our decision was based in whole or in part on information obtained in a report from the consumer reporting agency listed below.";

fn reference(p: &Printable) -> String {
    match &p.rails_application_id {
        Some(rails) => format!("{} (lender reference {rails})", p.application_id),
        None => p.application_id.to_string(),
    }
}

fn contact_lines(c: &Contact) -> Vec<String> {
    let mut lines = vec![
        c.name.clone(),
        c.address.clone(),
        format!("Telephone: {}", c.phone),
    ];
    if let Some(site) = &c.website {
        lines.push(site.clone());
    }
    lines
}

/// The notice as plain text (for a letter, or an e-mail body).
pub fn text(p: &Printable) -> String {
    let n = &p.content;
    let mut out = String::new();
    let _ = writeln!(out, "{}\n", TITLE.to_uppercase());
    let _ = writeln!(out, "Application: {}", reference(p));
    let _ = writeln!(
        out,
        "Date of decision: {}",
        p.decided_at.format("%B %-d, %Y")
    );
    if let Some(lender) = &n.lender {
        let _ = writeln!(out, "Creditor: {}", contact_lines(lender).join(", "));
    }
    let _ = writeln!(out, "\n{ACTION}\n\nPrincipal reasons for our decision:");
    for (i, r) in n.reasons.iter().enumerate() {
        let _ = writeln!(out, "  {}. {}", i + 1, r.statement);
    }
    for c in &n.consumer_reports {
        let _ = writeln!(out, "\n{REPORT_INTRO}");
        let _ = writeln!(out, "It was used for: {}.", c.used_for.join(", "));
        match &c.agency {
            Some(agency) => {
                for line in contact_lines(agency) {
                    let _ = writeln!(out, "  {line}");
                }
            }
            None => {
                let _ = writeln!(
                    out,
                    "  [agency not configured: consumer_reporting.{}]",
                    c.upstream
                );
            }
        }
    }
    for right in &n.rights {
        let _ = writeln!(out, "- {right}");
    }
    let _ = writeln!(out, "\n{}", NoticeContent::ECOA_STATEMENT);
    if !n.is_complete() {
        let _ = writeln!(
            out,
            "\nINCOMPLETE NOTICE, DO NOT SEND: not configured: {}",
            n.missing.join(", ")
        );
    }
    out
}

/// Escapes text for HTML element content and attribute values.
fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for ch in s.chars() {
        match ch {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

fn contact_html(c: &Contact) -> String {
    let lines: Vec<String> = contact_lines(c).iter().map(|l| esc(l)).collect();
    format!("<address>{}</address>", lines.join("<br>"))
}

/// The notice as a standalone HTML page, styled for reading and printing.
pub fn html(p: &Printable) -> String {
    let n = &p.content;
    let mut out = String::new();
    let _ = write!(
        out,
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
         <title>{title}</title>\n<style>\n\
         body {{ font-family: Georgia, serif; max-width: 42em; margin: 2em auto; padding: 0 1em; line-height: 1.5; color: #111; }}\n\
         h1 {{ font-size: 1.4em; }} h2 {{ font-size: 1.1em; margin-top: 1.5em; }}\n\
         .incomplete {{ border: 2px solid #b00; padding: 0.5em 1em; color: #b00; }}\n\
         address {{ font-style: normal; margin: 0.5em 0 0.5em 1.5em; }}\n\
         @media print {{ .incomplete {{ display: block; }} }}\n\
         </style>\n</head>\n<body>\n",
        title = esc(TITLE)
    );
    if !n.is_complete() {
        let _ = writeln!(
            out,
            "<p class=\"incomplete\"><strong>Incomplete notice, do not send.</strong> Not configured: {}</p>",
            esc(&n.missing.join(", "))
        );
    }
    let _ = write!(
        out,
        "<h1>{}</h1>\n<p>Application: {}<br>Date of decision: <time datetime=\"{}\">{}</time></p>\n",
        esc(TITLE),
        esc(&reference(p)),
        p.decided_at.format("%Y-%m-%d"),
        p.decided_at.format("%B %-d, %Y")
    );
    if let Some(lender) = &n.lender {
        let _ = write!(out, "<p>Creditor:</p>\n{}\n", contact_html(lender));
    }
    let _ = write!(
        out,
        "<p>{}</p>\n<h2>Principal reasons for our decision</h2>\n<ol>\n",
        esc(ACTION)
    );
    for r in &n.reasons {
        let _ = writeln!(out, "<li>{}</li>", esc(&r.statement));
    }
    out.push_str("</ol>\n");
    if !n.consumer_reports.is_empty() {
        out.push_str("<h2>Your rights under the Fair Credit Reporting Act</h2>\n");
        for c in &n.consumer_reports {
            let _ = writeln!(
                out,
                "<p>{} It was used for: {}.</p>",
                esc(REPORT_INTRO),
                esc(&c.used_for.join(", "))
            );
            match &c.agency {
                Some(agency) => {
                    let _ = writeln!(out, "{}", contact_html(agency));
                }
                None => {
                    let _ = writeln!(
                        out,
                        "<p class=\"incomplete\">Agency not configured: consumer_reporting.{}</p>",
                        esc(&c.upstream)
                    );
                }
            }
        }
        out.push_str("<ul>\n");
        for right in &n.rights {
            let _ = writeln!(out, "<li>{}</li>", esc(right));
        }
        out.push_str("</ul>\n");
    }
    let _ = write!(
        out,
        "<h2>Equal Credit Opportunity Act</h2>\n<p>{}</p>\n</body>\n</html>\n",
        esc(NoticeContent::ECOA_STATEMENT)
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use dossier_core::adverse_action::NoticeSettings;
    use html5ever::tendril::TendrilSink as _;

    fn printable(codes: &[&str], settings: &NoticeSettings) -> Printable {
        let codes: Vec<String> = codes.iter().map(|c| c.to_string()).collect();
        Printable {
            application_id: Uuid::nil(),
            rails_application_id: Some("R-1<script>".into()),
            decided_at: "2026-12-04T10:00:00Z".parse().unwrap(),
            content: adverse_action::content(&codes, settings),
        }
    }

    fn configured() -> NoticeSettings {
        NoticeSettings::parse(
            "[lender]\nname = \"Golden State PACE & Co\"\naddress = \"1 Capitol Mall, Sacramento, CA 95814\"\nphone = \"1-800-555-0199\"\n\
             [consumer_reporting.identity]\nname = \"Acme Consumer Data\"\naddress = \"PO Box 100, Atlanta, GA 30301\"\nphone = \"1-800-555-0100\"\nwebsite = \"https://acme.example/disputes\"\n",
        )
        .unwrap()
    }

    /// Parse errors an HTML5 parser reports for the page (none for a valid document).
    fn html_errors(page: &str) -> Vec<String> {
        let dom = html5ever::parse_document(
            markup5ever_rcdom::RcDom::default(),
            html5ever::ParseOpts::default(),
        )
        .one(page);
        dom.errors.borrow().iter().map(|e| e.to_string()).collect()
    }

    #[test]
    fn the_page_is_valid_html_with_reasons_in_order_and_the_disclosure() {
        let p = printable(
            &["PROPERTY_TAX_DELINQUENT", "BANKRUPTCY_OPEN"],
            &configured(),
        );
        let page = html(&p);
        assert_eq!(html_errors(&page), Vec::<String>::new(), "{page}");
        let tax = page
            .find("Property taxes on the property are delinquent.")
            .unwrap();
        let bankruptcy = page.find("<li>Bankruptcy.</li>").unwrap();
        assert!(tax < bankruptcy);
        assert!(page.contains("Acme Consumer Data"));
        assert!(page.contains("free copy of your report"));
        // Text from configuration is escaped, never markup.
        assert!(page.contains("Golden State PACE &amp; Co"));
        assert!(page.contains("R-1&lt;script&gt;"));
        assert!(!page.contains("incomplete\""));
    }

    #[test]
    fn text_states_the_reasons_and_an_incomplete_notice_says_so() {
        let t = text(&printable(&["DEBT_TO_INCOME_EXCEEDED"], &configured()));
        assert!(
            t.contains("  1. Your obligations would be too high in relation to your income."),
            "{t}"
        );
        assert!(t.contains("It was used for: income and debt verification."));
        assert!(t.contains("Date of decision: December 4, 2026"));
        assert!(!t.contains("INCOMPLETE"));
        let unconfigured = printable(&["IDENTITY_NOT_VERIFIED"], &NoticeSettings::default());
        let t = text(&unconfigured);
        assert!(t.contains("INCOMPLETE NOTICE, DO NOT SEND: not configured: consumer_reporting.identity, lender"), "{t}");
        let page = html(&unconfigured);
        assert!(page.contains("Incomplete notice, do not send."));
        assert_eq!(html_errors(&page), Vec::<String>::new());
    }

    #[test]
    fn no_rights_section_without_a_consumer_report() {
        let p = printable(&["INVOLUNTARY_LIEN"], &configured());
        assert!(!html(&p).contains("Fair Credit Reporting Act"));
        assert!(!text(&p).contains("free copy"));
    }
}
