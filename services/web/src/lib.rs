//! # treem-web — what the offices see
//!
//! The presentation both read services (town, province) and the ward's
//! data-entry page share, so that one officer sees one language and one
//! layout whatever level they work at:
//!
//! - [`lang`]: Vietnamese (default) or English, chosen per request;
//! - [`format`]: numbers in the Vietnamese way (`1.234,5`), money in đồng,
//!   times in Vietnam time, durations in words;
//! - [`labels`]: the plan's words — objectives (Mục tiêu 1–4), offices of
//!   section E, statuses, case categories, units, event kinds — in both
//!   languages;
//! - [`reason`]: why a value was judged as it was, in Vietnamese, following
//!   `treem_proto::judge` rule by rule (the English reason is judge's own);
//! - [`html`]: escaping and the page shell;
//! - [`login`]: the sign-in page of the town and the province;
//! - [`sparkline`]: a server-rendered inline SVG trend chart per indicator;
//! - [`dashboard`]: the dashboard page, for wards under a town or towns
//!   under a province;
//! - [`CSS`]: the one stylesheet, served by each service itself (no CDN:
//!   the pages work with no internet).
//!
//! Invariants: no IO, no HTTP, no runtime; every page is a pure function
//! of a model the service builds from its own store. Every text that comes
//! from data is escaped ([`html::esc`]). Pages use no JavaScript.
//!
//! Why a crate of its own: services never depend on each other (STYLE.md
//! habit 3), and the labels, formats and layout must not drift between the
//! town's and the province's dashboards.

pub mod dashboard;
pub mod format;
pub mod html;
pub mod labels;
pub mod lang;
pub mod login;
pub mod reason;
pub mod sparkline;

pub use lang::Lang;

/// The stylesheet of every treem page, served at [`CSS_PATH`].
pub const CSS: &str = include_str!("../assets/treem.css");
/// Where each service serves [`CSS`].
pub const CSS_PATH: &str = "/assets/treem.css";
