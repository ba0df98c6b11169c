//! The `treem-ward` command line: one command per event kind, CSV import,
//! the signing key (`keys`),
//! status and log, `serve` and `check-config`.
//!
//! sled lets one process open a database. When `treem-ward serve` is
//! running, its log is locked; the recording commands then talk to the
//! running node through its local HTTP API, at the address it wrote to
//! `<data_dir>/http.addr`. Otherwise they open the log directly; what they
//! record is sent to the town the next time `serve` runs.

use std::path::PathBuf;

use anyhow::{Context, bail};
use clap::{Args, Parser, Subcommand};
use treem_proto::Event;
use treem_proto::catalogue::Catalogue;
use treem_proto::event::{
    CaseCategory, CaseClosed, CaseSupportRecorded, EventCorrected, EventRetracted, IndicatorObserved, PopulationGroup, PopulationReported,
    Recognition, Sex, WardRecognised,
};
use uuid::Uuid;

mod backend;
pub mod keys;

use backend::Backend;

use crate::config::Config;
use crate::csv_import;
use crate::http::events::Recorded;
use crate::identity::{Identity, OpenCase};
use crate::log::LogStatus;

#[derive(Debug, Parser)]
#[command(name = "treem-ward", version, about = "treem ward node: record child-protection data offline, sync it to the town")]
pub struct Cli {
    /// TOML config file (each field can also be set with a TREEM_WARD_* variable).
    #[arg(long, short, global = true, env = "TREEM_WARD_CONFIG")]
    pub config: Option<PathBuf>,
    /// Officer id to write on events (default: `author` in the config).
    #[arg(long, global = true)]
    pub author: Option<String>,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the node: local HTTP API and sync to the town, until Ctrl-C or SIGTERM.
    Serve,
    /// Check the configuration and exit.
    CheckConfig,
    /// Record population figures, an indicator observation or a ward recognition.
    #[command(subcommand)]
    Record(RecordCmd),
    /// Open a case, record support, close it.
    #[command(subcommand)]
    Case(CaseCmd),
    /// Replace an earlier event by a corrected one of the same kind.
    Correct(CorrectArgs),
    /// Withdraw an earlier event: it no longer counts.
    Retract {
        #[arg(long)]
        event_id: Uuid,
        #[arg(long)]
        reason: String,
    },
    /// Import indicator observations from a CSV file (indicator,year,numerator,denominator,source).
    ImportCsv { file: PathBuf },
    /// Events not yet acknowledged by the town, last sync, last error.
    Status,
    /// List recorded events.
    Log {
        /// Show events after this seq.
        #[arg(long, default_value_t = 0)]
        after: u64,
        #[arg(long, default_value_t = 100)]
        limit: usize,
        /// One JSON envelope per line.
        #[arg(long)]
        json: bool,
    },
    /// The ward's signing key: make it, show it (--public: for the town), rotate it.
    #[command(subcommand)]
    Keys(keys::KeysCmd),
}

#[derive(Debug, Clone, Subcommand)]
pub enum RecordCmd {
    /// Population figures (denominators) for a year; give the groups you have.
    Population(PopulationArgs),
    /// One indicator's numerator (and denominator) for a year.
    Observation(ObservationArgs),
    /// The ward gains (or, with --revoked, loses) a recognition.
    Recognition(RecognitionArgs),
}

#[derive(Debug, Clone, Args)]
pub struct PopulationArgs {
    #[arg(long)]
    pub year: u16,
    #[arg(long)]
    pub children_under_16: Option<u64>,
    #[arg(long)]
    pub children_under_5: Option<u64>,
    #[arg(long)]
    pub children_under_1: Option<u64>,
    #[arg(long)]
    pub live_births: Option<u64>,
    #[arg(long)]
    pub children_aged_5: Option<u64>,
    #[arg(long)]
    pub children_aged_5_to_17: Option<u64>,
    #[arg(long)]
    pub children_aged_7_plus: Option<u64>,
    #[arg(long)]
    pub children_aged_11_plus: Option<u64>,
    #[arg(long)]
    pub children_up_to_8: Option<u64>,
    #[arg(long)]
    pub marriages_registered: Option<u64>,
    #[arg(long)]
    pub collaborators: Option<u64>,
}

#[derive(Debug, Clone, Args)]
pub struct ObservationArgs {
    /// Catalogue code, e.g. 4a.
    #[arg(long)]
    pub indicator: String,
    #[arg(long)]
    pub year: u16,
    #[arg(long)]
    pub numerator: u64,
    /// Required for rates, omitted for counts.
    #[arg(long)]
    pub denominator: Option<u64>,
    /// Who measured it: health_centre, school, ward_survey…
    #[arg(long)]
    pub source: String,
}

#[derive(Debug, Clone, Args)]
pub struct RecognitionArgs {
    /// child_friendly or play_space.
    #[arg(long, value_parser = parse_recognition)]
    pub recognition: Recognition,
    #[arg(long)]
    pub year: u16,
    /// The ward lost the status this year.
    #[arg(long)]
    pub revoked: bool,
}

#[derive(Debug, Clone, Subcommand)]
pub enum CaseCmd {
    /// Open a case. The identity stays in this ward; the town gets a pseudonymous case id.
    Open(CaseOpenArgs),
    /// Record support given to a case.
    Support {
        #[arg(long)]
        case_id: Uuid,
        #[arg(long)]
        year: u16,
        /// care, nurture, relief, medical, legal, education…
        #[arg(long)]
        support: String,
    },
    /// Close a case.
    Close {
        #[arg(long)]
        case_id: Uuid,
        #[arg(long)]
        year: u16,
        #[arg(long)]
        reason: String,
    },
    /// Show the child's identity of a case (officers only; it never leaves this ward).
    Show {
        #[arg(long)]
        case_id: Uuid,
    },
    /// Withdraw consent (Decree 13/2023, Law 91/2025): erase the child's identity for good.
    /// The case's anonymous events and counts stay; the identity cannot be recovered afterwards.
    Forget {
        #[arg(long)]
        case_id: Uuid,
        /// Who asked, on which document (never the child's name or address).
        #[arg(long)]
        reason: String,
    },
}

#[derive(Debug, Clone, Args)]
pub struct CaseOpenArgs {
    #[arg(long)]
    pub name: String,
    /// YYYY-MM-DD.
    #[arg(long)]
    pub date_of_birth: String,
    #[arg(long)]
    pub address: String,
    #[arg(long)]
    pub guardian: String,
    #[arg(long)]
    pub year: u16,
    /// special_circumstances, abuse, injury, fatal_injury, child_marriage, child_labour, disaster_affected.
    #[arg(long, value_parser = parse_category)]
    pub category: CaseCategory,
    /// Art. 10 letters for special circumstances, e.g. a,c.
    #[arg(long, value_delimiter = ',')]
    pub groups: Vec<char>,
    /// female or male.
    #[arg(long, value_parser = parse_sex)]
    pub sex: Sex,
}

#[derive(Debug, Clone, Args)]
pub struct CorrectArgs {
    /// The id of the event to correct (see `treem-ward log`).
    #[arg(long)]
    pub event_id: Uuid,
    #[arg(long)]
    pub reason: String,
    /// The corrected event as JSON, `{"kind": "...", "body": {...}}`, instead of a subcommand.
    #[arg(long)]
    pub body: Option<String>,
    #[command(subcommand)]
    pub what: Option<RecordCmd>,
}

fn parse_recognition(s: &str) -> Result<Recognition, String> {
    match s {
        "child_friendly" => Ok(Recognition::ChildFriendly),
        "play_space" => Ok(Recognition::PlaySpace),
        _ => Err("use child_friendly (indicator 1) or play_space (indicator 21)".into()),
    }
}

fn parse_category(s: &str) -> Result<CaseCategory, String> {
    CaseCategory::parse(s).ok_or_else(|| format!("use one of {}", CaseCategory::ALL.map(|c| c.name()).join(", ")))
}

fn parse_sex(s: &str) -> Result<Sex, String> {
    match s {
        "female" => Ok(Sex::Female),
        "male" => Ok(Sex::Male),
        _ => Err("use female or male".into()),
    }
}

impl RecordCmd {
    pub fn into_event(self) -> Event {
        match self {
            RecordCmd::Population(p) => {
                let figures = [
                    (PopulationGroup::ChildrenUnder16, p.children_under_16),
                    (PopulationGroup::ChildrenUnder5, p.children_under_5),
                    (PopulationGroup::ChildrenUnder1, p.children_under_1),
                    (PopulationGroup::LiveBirths, p.live_births),
                    (PopulationGroup::ChildrenAged5, p.children_aged_5),
                    (PopulationGroup::ChildrenAged5To17, p.children_aged_5_to_17),
                    (PopulationGroup::ChildrenAged7Plus, p.children_aged_7_plus),
                    (PopulationGroup::ChildrenAged11Plus, p.children_aged_11_plus),
                    (PopulationGroup::ChildrenUpTo8, p.children_up_to_8),
                    (PopulationGroup::MarriagesRegistered, p.marriages_registered),
                    (PopulationGroup::Collaborators, p.collaborators),
                ]
                .into_iter()
                .filter_map(|(g, n)| n.map(|n| (g, n)))
                .collect();
                Event::PopulationReported(PopulationReported { year: p.year, figures })
            }
            RecordCmd::Observation(o) => Event::IndicatorObserved(IndicatorObserved {
                indicator: o.indicator,
                year: o.year,
                numerator: o.numerator,
                denominator: o.denominator,
                source: o.source,
            }),
            RecordCmd::Recognition(r) => {
                Event::WardRecognised(WardRecognised { recognition: r.recognition, year: r.year, granted: !r.revoked })
            }
        }
    }
}

/// Runs one command. `serve` returns when the node has shut down.
pub async fn run(cli: Cli) -> anyhow::Result<()> {
    let config = Config::load(cli.config.as_deref())?;
    let author = cli.author.clone().unwrap_or_else(|| config.author.clone());
    match cli.command {
        Command::Serve => serve(config).await,
        Command::Keys(cmd) => keys::run(&config, cmd),
        Command::CheckConfig => {
            config.validate()?;
            let h = config.hierarchy()?;
            let ward = h.ward(&config.province, &config.town, &config.ward)?;
            println!(
                "config is valid: ward {} {} ({}), town {}, province {}; data in {}; HTTP on {}; town NATS at {}",
                ward.kind,
                ward.name,
                config.ward,
                config.town,
                config.province,
                config.data_dir.display(),
                config.http_addr,
                config.nats_url
            );
            Ok(())
        }
        Command::Record(cmd) => {
            let backend = Backend::open(&config).await?;
            let r = backend.record(&author, cmd.into_event()).await?;
            print_recorded(&r, &backend);
            Ok(())
        }
        Command::Case(cmd) => {
            let backend = Backend::open(&config).await?;
            match cmd {
                CaseCmd::Open(a) => {
                    let case = OpenCase {
                        identity: Identity { name: a.name, date_of_birth: a.date_of_birth, address: a.address, guardian: a.guardian },
                        year: a.year,
                        category: a.category,
                        groups: a.groups,
                        sex: a.sex,
                    };
                    let r = backend.open_case(&author, case).await?;
                    println!("case opened: case id {} (seq {}, event {})", r.case_id, r.seq, r.id);
                    println!("the child's identity stays in this ward; the town sees only the case id and coarse attributes");
                }
                CaseCmd::Support { case_id, year, support } => {
                    let event = Event::CaseSupportRecorded(CaseSupportRecorded { case_id, year, support });
                    print_recorded(&backend.record(&author, event).await?, &backend);
                }
                CaseCmd::Close { case_id, year, reason } => {
                    let event = Event::CaseClosed(CaseClosed { case_id, year, reason });
                    print_recorded(&backend.record(&author, event).await?, &backend);
                }
                CaseCmd::Show { case_id } => {
                    let c = backend.show_case(case_id).await?;
                    println!("case {}", c.case_id);
                    println!("name:           {}", c.identity.name);
                    println!("date of birth:  {}", c.identity.date_of_birth);
                    println!("address:        {}", c.identity.address);
                    println!("guardian:       {}", c.identity.guardian);
                }
                CaseCmd::Forget { case_id, reason } => {
                    let w = backend.withdraw_consent(case_id, &author, &reason).await?;
                    println!(
                        "consent withdrawn for case {} at {}: the child's identity is erased and its key destroyed; it cannot be recovered",
                        w.case_id,
                        w.withdrawn_at.to_rfc3339()
                    );
                    println!("the case's anonymous events and counts stay; support and closure can still be recorded");
                }
            }
            Ok(())
        }
        Command::Correct(args) => {
            let corrected = match (args.body, args.what) {
                (Some(json), None) => serde_json::from_str::<Event>(&json)
                    .context("--body must be an event as JSON, {\"kind\": \"indicator.observed\", \"body\": {...}}")?,
                (None, Some(cmd)) => cmd.into_event(),
                _ => bail!(
                    "give the corrected event either as a subcommand (population, observation, recognition) or with --body JSON, not both"
                ),
            };
            let event =
                Event::EventCorrected(EventCorrected { replaces: args.event_id, corrected: Box::new(corrected), reason: args.reason });
            let backend = Backend::open(&config).await?;
            print_recorded(&backend.record(&author, event).await?, &backend);
            Ok(())
        }
        Command::Retract { event_id, reason } => {
            let backend = Backend::open(&config).await?;
            let event = Event::EventRetracted(EventRetracted { replaces: event_id, reason });
            print_recorded(&backend.record(&author, event).await?, &backend);
            Ok(())
        }
        Command::ImportCsv { file } => {
            let backend = Backend::open(&config).await?;
            let reader = std::fs::File::open(&file).with_context(|| format!("cannot read {}", file.display()))?;
            let events = csv_import::parse_observations(reader, &Catalogue::shipped())?;
            let total = events.len();
            match &backend {
                Backend::Local(log) => {
                    csv_import::record_all(log, &author, events).await?;
                }
                Backend::Remote { .. } => {
                    let bar = csv_import::progress_bar(total as u64);
                    for (done, event) in events.into_iter().enumerate() {
                        if let Err(e) = backend.record(&author, event).await {
                            bar.abandon();
                            bail!(
                                "recording stopped after {done} of {total} rows: {e:#}; the first {done} rows are recorded, import only the rest"
                            );
                        }
                        bar.inc(1);
                    }
                    bar.finish();
                }
            }
            println!("imported {total} rows from {}", file.display());
            Ok(())
        }
        Command::Status => {
            let backend = Backend::open(&config).await?;
            let s = backend.status().await?;
            print_status(&s, &config, backend.is_local());
            Ok(())
        }
        Command::Log { after, limit, json } => {
            let backend = Backend::open(&config).await?;
            let acked = backend.status().await?.acked_seq;
            for env in backend.events(after, limit).await? {
                if json {
                    println!("{}", String::from_utf8_lossy(&env.encode()));
                } else {
                    let body = serde_json::to_value(&env.event).ok().and_then(|v| v.get("body").cloned()).unwrap_or_default();
                    let sent = if env.seq <= acked { "sent   " } else { "pending" };
                    println!(
                        "{:>6}  {}  {sent}  {:<22} {}  {}  {body}",
                        env.seq,
                        env.recorded_at.format("%Y-%m-%d %H:%M:%S"),
                        env.event.kind(),
                        env.id,
                        env.author
                    );
                }
            }
            Ok(())
        }
    }
}

fn print_recorded(r: &Recorded, backend: &Backend) {
    println!("recorded {} as seq {} (event id {})", r.kind, r.seq, r.id);
    if backend.is_local() {
        println!("it will be sent to the town the next time `treem-ward serve` runs");
    }
}

fn print_status(s: &LogStatus, config: &Config, local: bool) {
    let name = config
        .hierarchy()
        .ok()
        .and_then(|h| h.ward(&config.province, &config.town, &config.ward).ok().map(|w| format!("{} {}", w.kind, w.name)))
        .unwrap_or_default();
    println!("ward {} {name}", s.ward);
    println!("recorded events:   {}", s.last_seq);
    println!("acknowledged:      {} (by the town)", s.acked_seq);
    println!("pending:           {} event(s) not yet acknowledged by the town", s.pending);
    match s.last_sync_at {
        Some(t) => println!("last sync:         {}", t.to_rfc3339()),
        None => println!("last sync:         never"),
    }
    match (&s.last_error, s.last_error_at) {
        (Some(e), Some(t)) => println!("last error:        {e} (at {})", t.to_rfc3339()),
        (Some(e), None) => println!("last error:        {e}"),
        _ => println!("last error:        none since the last sync"),
    }
    if let Some(c) = &s.catch_up {
        match c.finished_at {
            None => {
                println!("catching up:       seq {}…{}, {:.0}% acknowledged, {:.0} events/s", c.from_seq, c.to_seq, c.percent(), c.per_sec)
            }
            Some(t) => {
                println!("last catch-up:     seq {}…{} done at {} ({:.0} events/s)", c.from_seq, c.to_seq, t.to_rfc3339(), c.per_sec)
            }
        }
    }
    if let Some(r) = &s.last_rewind {
        println!(
            "last re-send:      from seq {} (was acknowledged up to {}) at {}: {}",
            r.to_seq + 1,
            r.from_acked_seq,
            r.at.to_rfc3339(),
            r.reason
        );
    }
    if local {
        println!("(the node is not running: `treem-ward serve` sends pending events to the town)");
    }
}

async fn serve(config: Config) -> anyhow::Result<()> {
    let node = crate::start(config).await?;
    println!("ward node listening on http://{}", node.http_addr);
    wait_for_signal().await?;
    tracing::info!("shutting down");
    node.shutdown().await;
    Ok(())
}

async fn wait_for_signal() -> anyhow::Result<()> {
    #[cfg(unix)]
    {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
        tokio::select! {
            r = tokio::signal::ctrl_c() => r?,
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    tokio::signal::ctrl_c().await?;
    Ok(())
}
