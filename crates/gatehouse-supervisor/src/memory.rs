//! The resident memory of worker process groups, read from /proc.
//!
//! `max_memory` counts a worker's whole group (a Gunicorn master and its worker, an app and the
//! helpers it starts), so one pass over `/proc/*/stat` sums the RSS of every process by group.
//! Only processes that are readable and parse are counted; a process that exits during the pass
//! is skipped.

use std::collections::HashMap;

use crate::sys;

/// Resident bytes of each group in `pgids`; groups with no readable process are absent.
pub(crate) fn rss_by_group(pgids: &[u32]) -> HashMap<u32, u64> {
    let mut totals = HashMap::new();
    if pgids.is_empty() {
        return totals;
    }
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return totals;
    };
    let page = sys::page_size();
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        if name.is_empty() || !name.bytes().all(|b| b.is_ascii_digit()) {
            continue;
        }
        let Ok(text) = std::fs::read_to_string(entry.path().join("stat")) else {
            continue;
        };
        let Some(stat) = Stat::parse(&text) else {
            continue;
        };
        if pgids.contains(&stat.pgrp) {
            *totals.entry(stat.pgrp).or_insert(0) += stat.rss_pages.saturating_mul(page);
        }
    }
    totals
}

/// The fields we need from `/proc/<pid>/stat`.
#[derive(Debug, PartialEq, Eq)]
struct Stat {
    pgrp: u32,
    rss_pages: u64,
}

impl Stat {
    /// `pid (comm) state ppid pgrp ...`; `comm` may hold spaces and parentheses, so fields are
    /// counted from the last `)`. After it, field 0 is `state`, 2 is `pgrp` and 21 is `rss`.
    fn parse(text: &str) -> Option<Stat> {
        let rest = &text[text.rfind(')')? + 1..];
        let fields: Vec<&str> = rest.split_ascii_whitespace().collect();
        Some(Stat {
            pgrp: fields.get(2)?.parse().ok()?,
            rss_pages: fields.get(21)?.parse().ok()?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_stat_with_a_tricky_command_name() {
        let text = "4242 (my (odd) app) S 1 4240 4240 0 -1 4194560 1 0 0 0 0 0 0 0 20 0 1 0 \
                    100 123456789 2500 18446744073709551615 1 1 0 0 0 0 0 0 0 0 0 0 17 1 0 0 0 0 0";
        assert_eq!(
            Stat::parse(text),
            Some(Stat {
                pgrp: 4240,
                rss_pages: 2500
            })
        );
        assert_eq!(Stat::parse("12 (x) S 1"), None);
        assert_eq!(Stat::parse("garbage"), None);
    }

    #[test]
    fn counts_our_own_group() {
        let own = std::fs::read_to_string("/proc/self/stat").unwrap();
        let pgrp = Stat::parse(&own).unwrap().pgrp;
        let totals = rss_by_group(&[pgrp]);
        assert!(totals[&pgrp] > 0, "{totals:?}");
    }
}
