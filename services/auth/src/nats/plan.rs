//! The NATS authorization plan: which accounts exist, who is in each, what
//! each identity may publish and subscribe to, and what crosses between
//! accounts — all derived from the hierarchy and the names in
//! `treem_proto::subject`, never written by hand. [`Plan::render`] turns it
//! into the `accounts { … }` block nats-server loads.
//!
//! # Accounts, not one account with many users
//!
//! Every identity has an account of its own: `WARD_<p>_<t>_<w>`,
//! `TOWN_<p>_<t>`, `PROVINCE_<p>`. Subject permissions on users of one
//! shared account are not enough, for two reasons found by trying:
//!
//! - **Reply subjects are not checked.** A client may name any subject as
//!   the reply of a request it is allowed to send; JetStream then publishes
//!   its answer there (a publish ack, the message of a pull request). In one
//!   shared account a ward could so write into the town's dead-letter
//!   stream, or anywhere else with interest. Across an account boundary the
//!   server rewrites the reply (`_R_…`) and routes the answer back into the
//!   requester's own account only.
//! - **Request bodies are not checked.** Whoever may create or update a
//!   stream or consumer chooses, in the body, its subjects, its sources and
//!   its deliver subject. The province creates its own stream; in a shared
//!   account it could give it the town's event stream as a source and read
//!   every case event. In an account of its own there are no events to
//!   source.
//!
//! So a boundary is an account: a ward's account holds nothing but the
//! ward's connection and four service imports from its town's account; the
//! province's account holds projections only. Permissions per user are kept
//! as well (a second line, and they make the server name what was refused:
//! `Permissions Violation for Publish to "…"`).
//!
//! # What each identity may do
//!
//! | identity | publish | subscribe | account holds |
//! | --- | --- | --- | --- |
//! | ward `w` of town `t` | its own events `treem.v1.events.p.t.w.>`; on the town's stream only: the last message on its own subjects (direct get by subject), reset and pull of its own probe consumer `ward-w-probe` | `_INBOX.>` | nothing (no JetStream) |
//! | town `t` | the JetStream API of its two streams (events, dead letters) and their consumers; its replay commands; its dead letters; its own projections `treem.v1.projections.p.t.>` (imported from the province's account) | `_INBOX.>` | its wards' events (imported), its streams |
//! | province `p` | the JetStream API of its projections stream and its consumers | `_INBOX.>` | every town's projections (exported to each town) |
//!
//! What a ward cannot do, by construction: publish on another ward's (or a
//! town's) subjects, subscribe to anything but its own replies, read the
//! town's stream other than the newest message on its own subjects and its
//! own probe consumer (whose filter the town sets), create or change any
//! stream or consumer. What the province cannot do: see an event at all.
//!
//! The ward's reads serve reconciliation (`services/ward/src/reconcile.rs`),
//! which asks what the stream still holds of the ward: by sequence through
//! the probe consumer (reset to the sequence, pull one message — the
//! consumer's filter is the ward's subjects, so only its own messages can
//! come), and the newest one by subject (direct get, whose subject form
//! takes no body: the filter is in the subject, and the permission
//! fixes it). `$JS.API.STREAM.MSG.GET` would have been simpler, but it takes
//! the sequence in the body and reads any ward's event.

use treem_proto::hierarchy::Hierarchy;
use treem_proto::subject;

/// Replies to requests come back on `_INBOX.<random>` (async-nats' default
/// prefix). Every account has one identity, so nobody else's replies can be
/// seen in it.
pub const INBOX: &str = "_INBOX.>";

/// Who an identity is in the hierarchy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Role {
    Ward { province: String, town: String, ward: String },
    Town { province: String, town: String },
    Province { province: String },
}

/// One NATS identity (one nkey user; during a rotation, two keys).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    /// File-name-safe name, e.g. `ward-70-690-25320`, `town-70-690`, `province-70`.
    pub name: String,
    pub role: Role,
    pub publish: Vec<String>,
    pub subscribe: Vec<String>,
}

/// A service export: `subject` of this account, answered here, requested
/// from `accounts`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Export {
    pub subject: String,
    pub accounts: Vec<String>,
    /// The answer is several messages (a pull request's batch), not one.
    pub streamed: bool,
}

/// A service import: requests on `subject` here go to `account`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Import {
    pub account: String,
    pub subject: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Account {
    pub name: String,
    pub jetstream: bool,
    pub identities: Vec<Identity>,
    pub exports: Vec<Export>,
    pub imports: Vec<Import>,
}

/// Every account of a hierarchy, in hierarchy order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    pub accounts: Vec<Account>,
}

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum PlanError {
    #[error(
        "code {0:?} cannot be used in NATS subjects and account names: codes may hold only ASCII letters and digits (fix the hierarchy file)"
    )]
    BadCode(String),
    #[error("ward code {0:?} is the token of the town's own command subjects; a ward with it could publish town commands")]
    ReservedWardCode(String),
    #[error("the hierarchy has no province; nothing to generate")]
    Empty,
}

pub fn ward_account(province: &str, town: &str, ward: &str) -> String {
    format!("WARD_{province}_{town}_{ward}")
}

pub fn town_account(province: &str, town: &str) -> String {
    format!("TOWN_{province}_{town}")
}

pub fn province_account(province: &str) -> String {
    format!("PROVINCE_{province}")
}

/// The identity name of a ward, town or province: what its seed file is called.
pub fn ward_identity(province: &str, town: &str, ward: &str) -> String {
    format!("ward-{province}-{town}-{ward}")
}

pub fn town_identity(province: &str, town: &str) -> String {
    format!("town-{province}-{town}")
}

pub fn province_identity(province: &str) -> String {
    format!("province-{province}")
}

/// The four subjects a ward may send to its town's account: its events, and
/// the reads of reconciliation (direct get of its newest message, reset and
/// pull of its probe consumer). Not consumer info: in the ward's account,
/// which has no JetStream, the server would answer it twice (once with "not
/// enabled"); a pull tells whether the probe exists.
pub fn ward_subjects(province: &str, town: &str, ward: &str) -> WardSubjects {
    let stream = subject::town_events_stream(province, town);
    let filter = subject::ward_events_filter(province, town, ward);
    let probe = subject::ward_probe_consumer(ward);
    WardSubjects {
        direct_get_last: format!("$JS.API.DIRECT.GET.{stream}.{filter}"),
        probe_reset: format!("$JS.API.CONSUMER.RESET.{stream}.{probe}"),
        probe_next: format!("$JS.API.CONSUMER.MSG.NEXT.{stream}.{probe}"),
        events: filter,
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WardSubjects {
    pub events: String,
    pub direct_get_last: String,
    pub probe_reset: String,
    pub probe_next: String,
}

/// The JetStream API subjects of one stream its owner needs: stream info,
/// create, update, get a message, direct get; every consumer operation
/// (create in all three forms, info, delete, names, list, reset, pull); acks.
fn stream_owner_api(stream: &str) -> Vec<String> {
    let mut s: Vec<String> = ["INFO", "CREATE", "UPDATE", "MSG.GET"].iter().map(|op| format!("$JS.API.STREAM.{op}.{stream}")).collect();
    s.extend([
        format!("$JS.API.DIRECT.GET.{stream}"),
        format!("$JS.API.DIRECT.GET.{stream}.>"),
        format!("$JS.API.CONSUMER.*.{stream}"),
        format!("$JS.API.CONSUMER.*.{stream}.>"),
        format!("$JS.API.CONSUMER.MSG.NEXT.{stream}.>"),
        format!("$JS.API.CONSUMER.DURABLE.CREATE.{stream}.>"),
        format!("$JS.ACK.{stream}.>"),
    ]);
    s
}

fn check_code(code: &str) -> Result<(), PlanError> {
    if code.is_empty() || !code.chars().all(|c| c.is_ascii_alphanumeric()) {
        return Err(PlanError::BadCode(code.into()));
    }
    Ok(())
}

impl Plan {
    /// The plan for every province, town and ward of `hierarchy`.
    pub fn from_hierarchy(hierarchy: &Hierarchy) -> Result<Plan, PlanError> {
        if hierarchy.provinces.is_empty() {
            return Err(PlanError::Empty);
        }
        let mut accounts = Vec::new();
        for p in &hierarchy.provinces {
            check_code(&p.code)?;
            let proj_stream = subject::province_projections_stream(&p.code);
            let mut province = Account {
                name: province_account(&p.code),
                jetstream: true,
                identities: vec![Identity {
                    name: province_identity(&p.code),
                    role: Role::Province { province: p.code.clone() },
                    publish: stream_owner_api(&proj_stream),
                    subscribe: vec![INBOX.into()],
                }],
                exports: Vec::new(),
                imports: Vec::new(),
            };
            let mut towns = Vec::new();
            for t in &p.towns {
                check_code(&t.code)?;
                let town_acc = town_account(&p.code, &t.code);
                let projections = subject::town_projections_filter(&p.code, &t.code);
                province.exports.push(Export { subject: projections.clone(), accounts: vec![town_acc.clone()], streamed: false });
                let events_stream = subject::town_events_stream(&p.code, &t.code);
                let dl_stream = subject::deadletter_stream(&p.code, &t.code);
                let mut publish = stream_owner_api(&events_stream);
                publish.extend(stream_owner_api(&dl_stream));
                publish.extend([
                    subject::town_replay_subject(&p.code, &t.code),
                    subject::deadletter_subject(&p.code, &t.code),
                    projections.clone(),
                ]);
                let mut town = Account {
                    name: town_acc.clone(),
                    jetstream: true,
                    identities: vec![Identity {
                        name: town_identity(&p.code, &t.code),
                        role: Role::Town { province: p.code.clone(), town: t.code.clone() },
                        publish,
                        subscribe: vec![INBOX.into()],
                    }],
                    exports: Vec::new(),
                    imports: vec![Import { account: province.name.clone(), subject: projections }],
                };
                let mut wards = Vec::new();
                for w in &t.wards {
                    check_code(&w.code)?;
                    if w.code == subject::TOWN_COMMAND_TOKEN {
                        return Err(PlanError::ReservedWardCode(w.code.clone()));
                    }
                    let ward_acc = ward_account(&p.code, &t.code, &w.code);
                    let s = ward_subjects(&p.code, &t.code, &w.code);
                    let all = [s.events.clone(), s.direct_get_last.clone(), s.probe_reset.clone(), s.probe_next.clone()];
                    for subject in &all {
                        let streamed = *subject == s.probe_next;
                        town.exports.push(Export { subject: subject.clone(), accounts: vec![ward_acc.clone()], streamed });
                    }
                    wards.push(Account {
                        name: ward_acc,
                        jetstream: false,
                        identities: vec![Identity {
                            name: ward_identity(&p.code, &t.code, &w.code),
                            role: Role::Ward { province: p.code.clone(), town: t.code.clone(), ward: w.code.clone() },
                            publish: all.to_vec(),
                            subscribe: vec![INBOX.into()],
                        }],
                        exports: Vec::new(),
                        imports: all.iter().map(|subject| Import { account: town_acc.clone(), subject: subject.clone() }).collect(),
                    });
                }
                towns.push(town);
                towns.extend(wards);
            }
            // The province first, then each town followed by its wards.
            accounts.push(province);
            accounts.extend(towns);
        }
        Ok(Plan { accounts })
    }

    /// Every identity of the plan, in order.
    pub fn identities(&self) -> impl Iterator<Item = &Identity> {
        self.accounts.iter().flat_map(|a| a.identities.iter())
    }

    /// The identity called `name`, if the plan has it.
    pub fn identity(&self, name: &str) -> Option<&Identity> {
        self.identities().find(|i| i.name == name)
    }

    /// The `accounts { … }` block for nats-server. `keys(identity)` gives
    /// the public nkeys (`U…`) that may log in as that identity: one, or two
    /// while a rotation is under way. An identity without keys cannot log in
    /// (it is left out, with a comment saying so).
    pub fn render(&self, keys: impl Fn(&str) -> Vec<String>) -> String {
        let q = |s: &str| format!("\"{s}\"");
        let list = |items: &[String], indent: &str| -> String {
            let mut out = String::from("[\n");
            for i in items {
                out.push_str(&format!("{indent}  {},\n", q(i)));
            }
            out.push_str(indent);
            out.push(']');
            out
        };
        let mut out = String::new();
        out.push_str("accounts {\n");
        for a in &self.accounts {
            out.push_str(&format!("  {} {{\n", a.name));
            if a.jetstream {
                out.push_str("    jetstream: enabled\n");
            }
            out.push_str("    users: [\n");
            for i in &a.identities {
                let keys = keys(&i.name);
                if keys.is_empty() {
                    out.push_str(&format!("      # {}: no key, cannot log in\n", i.name));
                }
                for key in keys {
                    out.push_str(&format!("      # {}\n", i.name));
                    out.push_str(&format!("      {{\n        nkey: {}\n", q(&key)));
                    out.push_str("        permissions: {\n");
                    out.push_str(&format!("          publish: {{ allow: {} }}\n", list(&i.publish, "          ")));
                    out.push_str(&format!("          subscribe: {{ allow: {} }}\n", list(&i.subscribe, "          ")));
                    out.push_str("        }\n      }\n");
                }
            }
            out.push_str("    ]\n");
            if !a.exports.is_empty() {
                out.push_str("    exports: [\n");
                for e in &a.exports {
                    let accounts = e.accounts.join(", ");
                    let response = if e.streamed { ", response_type: stream" } else { "" };
                    out.push_str(&format!("      {{ service: {}, accounts: [{accounts}]{response} }}\n", q(&e.subject)));
                }
                out.push_str("    ]\n");
            }
            if !a.imports.is_empty() {
                out.push_str("    imports: [\n");
                for i in &a.imports {
                    out.push_str(&format!("      {{ service: {{ account: {}, subject: {} }} }}\n", i.account, q(&i.subject)));
                }
                out.push_str("    ]\n");
            }
            out.push_str("  }\n");
        }
        out.push_str("}\n");
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan() -> Plan {
        Plan::from_hierarchy(&Hierarchy::shipped()).unwrap()
    }

    #[test]
    fn one_account_per_identity_province_first_then_each_town_and_its_wards() {
        let p = plan();
        let names: Vec<&str> = p.accounts.iter().map(|a| a.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "PROVINCE_70",
                "TOWN_70_690",
                "WARD_70_690_25320",
                "WARD_70_690_25324",
                "WARD_70_690_25325",
                "WARD_70_690_25326",
                "WARD_70_690_25333",
                "WARD_70_690_25336"
            ]
        );
        assert!(p.accounts.iter().all(|a| a.identities.len() == 1));
        assert!(p.accounts.iter().filter(|a| a.name.starts_with("WARD_")).all(|a| !a.jetstream), "wards hold no streams");
    }

    #[test]
    fn a_ward_may_send_only_its_own_subjects() {
        let p = plan();
        let w = p.identity("ward-70-690-25320").unwrap();
        assert_eq!(
            w.publish,
            [
                "treem.v1.events.70.690.25320.>",
                "$JS.API.DIRECT.GET.TREEM_EVENTS_70_690.treem.v1.events.70.690.25320.>",
                "$JS.API.CONSUMER.RESET.TREEM_EVENTS_70_690.ward-25320-probe",
                "$JS.API.CONSUMER.MSG.NEXT.TREEM_EVENTS_70_690.ward-25320-probe",
            ]
        );
        assert_eq!(w.subscribe, [INBOX]);
        for other in p.identities().filter(|i| i.name != w.name) {
            for s in &w.publish {
                assert!(!s.contains(".25324") || other.name.ends_with("25324"), "{s}");
            }
        }
        // Not the town's command subject, nor any stream or consumer change.
        assert!(!w.publish.iter().any(|s| s.contains(".town.") || s.contains("CREATE") || s.contains("STREAM")));
    }

    #[test]
    fn the_province_reads_projections_only_and_the_town_its_own_streams() {
        let p = plan();
        let prov = p.identity("province-70").unwrap();
        assert!(prov.publish.iter().all(|s| s.contains("TREEM_PROJECTIONS_70")), "{:?}", prov.publish);
        assert!(!prov.publish.iter().chain(&prov.subscribe).any(|s| s.contains("events") || s.contains("EVENTS")));
        let town = p.identity("town-70-690").unwrap();
        for s in &town.publish {
            assert!(
                s.contains("TREEM_EVENTS_70_690")
                    || s.contains("TREEM_DEADLETTER_70_690")
                    || s == "treem.v1.events.70.690.town.replay"
                    || s == "treem.v1.deadletter.70.690"
                    || s == "treem.v1.projections.70.690.>",
                "{s}"
            );
        }
        let province = &p.accounts[0];
        assert_eq!(
            province.exports,
            [Export { subject: "treem.v1.projections.70.690.>".into(), accounts: vec!["TOWN_70_690".into()], streamed: false }]
        );
        assert!(province.imports.is_empty(), "nothing flows into the province but projections");
    }

    #[test]
    fn render_lists_keys_and_quotes_every_subject() {
        let text = plan().render(|id| if id == "ward-70-690-25320" { vec!["UAAA".into(), "UBBB".into()] } else { vec![format!("U-{id}")] });
        assert!(text.contains("nkey: \"UAAA\"") && text.contains("nkey: \"UBBB\""), "both keys of a rotation");
        assert!(text.contains("\"$JS.API.CONSUMER.RESET.TREEM_EVENTS_70_690.ward-25320-probe\""));
        assert!(text.contains("response_type: stream"));
        let none = plan().render(|_| vec![]);
        assert!(none.contains("# province-70: no key, cannot log in") && !none.contains("nkey:"));
    }

    #[test]
    fn codes_that_would_break_subjects_are_refused() {
        let bad = |town: &str, ward: &str| {
            let unit = r#""valid_from": "2000-01-01", "valid_to": null"#;
            let json = format!(
                r#"{{"provinces": [{{"code": "70", "name": "P", {unit}, "towns": [{{"code": "{town}", "name": "T", "kind": "x", {unit},
                "wards": [{{"code": "{ward}", "name": "W", "kind": "x", {unit}}}]}}]}}]}}"#
            );
            Plan::from_hierarchy(&Hierarchy::parse(&json).unwrap())
        };
        assert_eq!(bad("69.0", "1"), Err(PlanError::BadCode("69.0".into())));
        assert_eq!(bad("690", "*"), Err(PlanError::BadCode("*".into())));
        assert_eq!(bad("690", ">"), Err(PlanError::BadCode(">".into())));
        assert_eq!(bad("690", "town"), Err(PlanError::ReservedWardCode("town".into())));
        assert!(bad("690", "25320").is_ok());
    }
}
