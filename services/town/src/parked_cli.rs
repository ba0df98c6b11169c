//! `treem-town parked list | show N | replay N | replay --all`: the parked
//! messages of the RUNNING town. The town's sled store is locked by the
//! serving process, so these talk to its HTTP API (`/api/v1/parked…`), at
//! `--url` or at the address it wrote to `<data_dir>/http.addr`, with the
//! admin token given in `TREEM_TOKEN` (or `--token`).
//!
//! Exit status: 0 when every request did what was asked; 1 when a replay is
//! still refused (its reason printed) or the town cannot be reached.

use anyhow::{Context, bail};
use clap::{Subcommand, ValueEnum};
use treem_town::Config;
use treem_town::http::parked::{Detail, ReplayResponse, Summary};

#[derive(Subcommand)]
pub enum ParkedCommand {
    /// List parked messages, oldest first (replayed ones stay listed, for audit).
    List {
        /// Only these.
        #[arg(long, value_enum)]
        status: Option<Status>,
        /// Print the API's JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Show one parked message with its exact payload.
    Show {
        /// The parked message's number (see `parked list`).
        n: u64,
        #[arg(long)]
        json: bool,
    },
    /// Replay a parked message through the fold with the code, catalogue and
    /// hierarchy the town runs now (after an upgrade or a configuration fix).
    Replay {
        /// The parked message's number (see `parked list`).
        #[arg(required_unless_present = "all", conflicts_with = "all")]
        n: Option<u64>,
        /// Every message still parked, oldest first.
        #[arg(long)]
        all: bool,
    },
}

#[derive(Clone, Copy, ValueEnum)]
pub enum Status {
    Parked,
    Replayed,
}

struct Town {
    http: reqwest::Client,
    base: String,
}

impl Town {
    fn new(config: &Config, url: Option<String>, token: Option<String>) -> anyhow::Result<Town> {
        let base = match url {
            Some(u) => u.trim_end_matches('/').to_owned(),
            None => {
                let path = config.data_dir.join("http.addr");
                let addr = std::fs::read_to_string(&path).with_context(|| {
                    format!(
                        "cannot read the running town's HTTP address from {}; is `treem-town serve` running with this configuration? (or give --url)",
                        path.display()
                    )
                })?;
                format!("http://{}", addr.trim())
            }
        };
        let mut headers = reqwest::header::HeaderMap::new();
        if let Some(token) = token {
            let mut value = reqwest::header::HeaderValue::from_str(&format!("Bearer {}", token.trim()))
                .context("the token has characters a header cannot carry; copy it again from `treem-town token create`")?;
            value.set_sensitive(true);
            headers.insert(reqwest::header::AUTHORIZATION, value);
        } else if config.auth {
            bail!(
                "the town's API needs an admin token: set TREEM_TOKEN (create one with `treem-town token create --name NAME --role admin`)"
            );
        }
        Ok(Town { http: reqwest::Client::builder().default_headers(headers).build()?, base })
    }

    /// Sends `req`; Ok(status, body) for a success, Err(the API's error message) otherwise.
    async fn send<T: serde::de::DeserializeOwned>(&self, req: reqwest::RequestBuilder) -> anyhow::Result<Result<(u16, T), String>> {
        let resp = req.send().await.with_context(|| format!("cannot reach the town at {}; is it running?", self.base))?;
        let status = resp.status();
        let body = resp.bytes().await.with_context(|| format!("reading the answer of {}", self.base))?;
        if status.is_success() {
            let value = serde_json::from_slice(&body).with_context(|| format!("unexpected answer from {}", self.base))?;
            return Ok(Ok((status.as_u16(), value)));
        }
        let message = serde_json::from_slice::<serde_json::Value>(&body)
            .ok()
            .and_then(|v| v.get("error").and_then(|e| e.as_str()).map(str::to_owned))
            .unwrap_or_else(|| format!("{status}: {}", String::from_utf8_lossy(&body)));
        Ok(Err(message))
    }

    async fn get<T: serde::de::DeserializeOwned>(&self, path: &str) -> anyhow::Result<T> {
        match self.send(self.http.get(format!("{}{path}", self.base))).await? {
            Ok((_, v)) => Ok(v),
            Err(message) => bail!("{message}"),
        }
    }

    async fn replay(&self, n: u64) -> anyhow::Result<Result<ReplayResponse, String>> {
        Ok(self.send(self.http.post(format!("{}/api/v1/parked/{n}/replay", self.base))).await?.map(|(_, r)| r))
    }
}

pub async fn run(config: &Config, url: Option<String>, token: Option<String>, command: ParkedCommand) -> anyhow::Result<()> {
    let town = Town::new(config, url, token)?;
    match command {
        ParkedCommand::List { status, json } => {
            let query = match status {
                None => "",
                Some(Status::Parked) => "?status=parked",
                Some(Status::Replayed) => "?status=replayed",
            };
            let list: Vec<serde_json::Value> = town.get(&format!("/api/v1/parked{query}")).await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&list)?);
                return Ok(());
            }
            let list: Vec<Summary> = list.into_iter().map(serde_json::from_value).collect::<Result<_, _>>()?;
            print_table(&list);
        }
        ParkedCommand::Show { n, json } => {
            if json {
                let v: serde_json::Value = town.get(&format!("/api/v1/parked/{n}")).await?;
                println!("{}", serde_json::to_string_pretty(&v)?);
            } else {
                let d: Detail = town.get(&format!("/api/v1/parked/{n}")).await?;
                print_detail(&d);
            }
        }
        ParkedCommand::Replay { n: Some(n), .. } => match town.replay(n).await? {
            Ok(r) => println!("{}", r.message),
            Err(reason) => bail!("{reason}"),
        },
        ParkedCommand::Replay { n: None, .. } => {
            let list: Vec<Summary> = town.get("/api/v1/parked?status=parked").await?;
            if list.is_empty() {
                println!("no parked messages to replay");
                return Ok(());
            }
            let mut refused = 0;
            for s in &list {
                match town.replay(s.n).await? {
                    Ok(r) => println!("#{}: {}", s.n, r.message),
                    Err(reason) => {
                        refused += 1;
                        println!("#{}: {reason}", s.n);
                    }
                }
            }
            let replayed = list.len() - refused;
            println!("replayed {replayed} of {}; {refused} still refused", list.len());
            if refused > 0 {
                bail!("{refused} parked message(s) still refused; see the reasons above");
            }
        }
    }
    Ok(())
}

fn dash<T: ToString>(v: &Option<T>) -> String {
    v.as_ref().map(ToString::to_string).unwrap_or_else(|| "-".into())
}

fn print_table(list: &[Summary]) {
    if list.is_empty() {
        println!("no parked messages");
        return;
    }
    let subject_w = list.iter().map(|s| s.subject.chars().count()).max().unwrap_or(7).max(7);
    println!("{:>4}  {:<8}  {:<6}  {:>6}  {:<10}  {:<subject_w$}  REASON", "#", "STATUS", "WARD", "SEQ", "DEADLETTER", "SUBJECT");
    for s in list {
        println!(
            "{:>4}  {:<8}  {:<6}  {:>6}  {:<10}  {:<subject_w$}  {}",
            s.n,
            s.status,
            dash(&s.ward),
            dash(&s.seq),
            s.deadletter,
            s.subject,
            s.reason
        );
    }
    let still = list.iter().filter(|s| s.status == "parked").count();
    println!("{} parked message(s): {still} still parked, {} replayed", list.len(), list.len() - still);
}

fn print_detail(d: &Detail) {
    let s = &d.summary;
    println!("parked message #{}", s.n);
    match &s.replayed {
        Some(r) => println!("  status:      replayed at {} by {}: {}", r.at, r.by, r.outcome),
        None => println!("  status:      parked"),
    }
    println!("  subject:     {}", s.subject);
    println!("  reason:      {}", s.reason);
    println!(
        "  ward / seq:  {} / {} ({})",
        dash(&s.ward),
        dash(&s.seq),
        if s.seq_consumed { "refused in its turn: the ward's seq moved past it" } else { "never placed in the ward's sequence" }
    );
    println!("  event id:    {}", dash(&s.event_id));
    println!("  dead letter: {}", s.deadletter);
    println!("  payload ({} bytes{}):", d.payload_len, if d.payload_utf8 { "" } else { ", not UTF-8, shown lossily" });
    println!("{}", d.payload);
}
