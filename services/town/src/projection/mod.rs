//! Read-side views computed from the folded state: indicator figures per
//! ward and for the town ([`indicators`]), case summaries ([`cases`]) and
//! sync status ([`sync`]). Pure functions of the store's contents, so a
//! rebuilt store gives the same views as the live one.

pub mod cases;
pub mod indicators;
pub mod sync;
