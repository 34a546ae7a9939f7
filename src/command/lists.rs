//! The pattern lists, read from the app's lookup files.
//!
//! `lookups/abused_web_services.csv` ships with the app (an upgrade replaces
//! it); `lookups/abused_web_services_local.csv` is the admin's own file, which
//! the app never ships, so an upgrade never touches it. Both have the columns
//! `pattern,category,lists,reference,note`; the local file may add `disabled`.
//! A list is the shipped rows naming it, in file order, then the local file's
//! changes in its order: a row adds its pattern to the lists it names (a new
//! list name makes a new list; a pattern already there takes the new
//! category), a `disabled` row (`1` or `true`) removes its pattern from them.
//!
//! The shipped file's rows are built into the program (`include_str!`), so
//! the lists a program matches are always those of its own version: on a
//! search head cluster or Splunk Cloud an upgrade may keep an older
//! `abused_web_services.csv` on disk (app/README.md, "Pattern lists"), which
//! then only affects what `| inputlookup` shows. The one file read is the
//! admin's. It is found from the program's own path, never from anything a
//! search says: the program lives in `<app>/bin/` or `<app>/<platform>/bin/`,
//! so `<app>` is one or two folders above its own; the first ancestor (up to
//! three, which also covers a cargo build folder inside the source tree) whose
//! `lookups/` holds the shipped file is the app, and its
//! `lookups/abused_web_services_local.csv` is read if it exists. Without such a
//! folder (a program run outside any app) there are no local changes. This is
//! the only module that reads a file.

use crate::error::Error;
use std::path::{Path, PathBuf};

/// The shipped lookup's file name.
pub const DEFAULT_FILE: &str = "abused_web_services.csv";
/// The admin's lookup's file name.
pub const LOCAL_FILE: &str = "abused_web_services_local.csv";
/// The shipped lookup as built into the program.
const BUILT_IN: &str = include_str!("../../lookups/abused_web_services.csv");
/// The columns both files start with, in order.
const COLUMNS: [&str; 5] = ["pattern", "category", "lists", "reference", "note"];
/// Most bytes read from one lookup file (the shipped one is a few kB; a list
/// of 100,000 patterns is about 8 MB).
const MAX_FILE_BYTES: u64 = 64 << 20;

/// One pattern of a list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// The Splunk wildcard.
    pub pattern: String,
    /// Its category.
    pub category: String,
}

/// Every list the lookups define.
#[derive(Debug, Clone, Default)]
pub struct Lists {
    lists: Vec<(String, Vec<Entry>)>,
}

/// The lookup files' folder beside the program, if there is one.
fn lookups_dir() -> Option<PathBuf> {
    let exe = std::env::current_exe().ok()?;
    exe.ancestors()
        .skip(1)
        .take(4)
        .map(|dir| dir.join("lookups"))
        .find(|dir| dir.join(DEFAULT_FILE).is_file())
}

fn read(path: &Path) -> Result<String, Error> {
    use std::io::Read;
    let cannot = |why: String| {
        Error::Option(format!(
            "cannot read the pattern lookup {}: {why}; reinstall the app, or fix the file's permissions",
            path.display()
        ))
    };
    let file = std::fs::File::open(path).map_err(|e| cannot(e.to_string()))?;
    let mut text = String::new();
    file.take(MAX_FILE_BYTES + 1)
        .read_to_string(&mut text)
        .map_err(|e| cannot(e.to_string()))?;
    if text.len() as u64 > MAX_FILE_BYTES {
        return Err(cannot(format!("it is larger than {} MiB", MAX_FILE_BYTES >> 20)));
    }
    Ok(text)
}

/// Is `name` a list name: 1 to 64 lowercase letters, digits or `_`? The
/// one rule for the lookups' `lists` column and the `list=` option.
pub fn is_list_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
}

impl Lists {
    /// The lists of the app this program belongs to (see the module docs).
    pub fn load() -> Result<Lists, Error> {
        let shipped = format!("lookups/{DEFAULT_FILE} (built into the program)");
        match lookups_dir() {
            Some(dir) => {
                let local = dir.join(LOCAL_FILE);
                // Anything at the local file's path must be readable: only
                // its absence means "no local changes".
                let local_text = if local.exists() { Some(read(&local)?) } else { None };
                Lists::parse(
                    BUILT_IN,
                    &shipped,
                    local_text.as_deref().map(|t| (t, local.display().to_string())),
                )
            }
            None => Lists::parse(BUILT_IN, &shipped, None),
        }
    }

    /// The lists from the shipped file's text and, optionally, the local
    /// file's; `name`s only serve error messages.
    pub fn parse(default: &str, name: &str, local: Option<(&str, String)>) -> Result<Lists, Error> {
        let mut lists = Lists::default();
        lists.apply(default, name, false)?;
        if let Some((text, name)) = local {
            lists.apply(text, &name, true)?;
        }
        Ok(lists)
    }

    fn apply(&mut self, text: &str, file: &str, local: bool) -> Result<(), Error> {
        let bad = |row: usize, what: String| Error::Option(format!("pattern lookup {file}, row {row}: {what}"));
        let mut reader = csv::ReaderBuilder::new()
            .has_headers(false)
            .flexible(true)
            .from_reader(text.as_bytes());
        let mut records = reader.records();
        let header = match records.next() {
            Some(Ok(h)) => h,
            Some(Err(e)) => return Err(bad(0, format!("{e}; the file must be CSV"))),
            None => {
                return Err(bad(
                    0,
                    format!("the file is empty; its first line must be {}", COLUMNS.join(",")),
                ))
            }
        };
        let names: Vec<&str> = header.iter().collect();
        let with_disabled = local && names.len() == 6 && names[5] == "disabled";
        if names[..names.len().min(5)] != COLUMNS || (names.len() != 5 && !with_disabled) {
            let want = if local {
                format!("{} (and optionally ,disabled)", COLUMNS.join(","))
            } else {
                COLUMNS.join(",")
            };
            return Err(bad(
                0,
                format!("the header is \"{}\"; it must be {want}", names.join(",")),
            ));
        }
        for (i, record) in records.enumerate() {
            let row = i + 1;
            let record = record.map_err(|e| bad(row, format!("{e}; quote values that hold commas or quotes")))?;
            if record.len() != names.len() {
                return Err(bad(
                    row,
                    format!(
                        "it has {} values, the header {}; give every column a value (or leave it empty)",
                        record.len(),
                        names.len()
                    ),
                ));
            }
            let pattern = record[0].trim();
            if pattern.is_empty() || pattern.chars().any(char::is_whitespace) {
                return Err(bad(
                    row,
                    format!(
                        "the pattern \"{}\" is empty or holds blanks; give one Splunk wildcard such as *example.com*",
                        crate::error::excerpt(record[0].as_bytes(), 40)
                    ),
                ));
            }
            let category = record[1].trim();
            if category.is_empty() {
                return Err(bad(
                    row,
                    format!("the pattern {pattern} has no category; give one such as paste or tunnel"),
                ));
            }
            let names_of: Vec<&str> = record[2].split_whitespace().collect();
            if names_of.is_empty() {
                return Err(bad(row, format!("the pattern {pattern} belongs to no list; name at least one in the lists column, e.g. extended")));
            }
            if let Some(n) = names_of.iter().find(|n| !is_list_name(n)) {
                return Err(bad(
                    row,
                    format!(
                        "\"{}\" is not a list name; use lowercase letters, digits and _",
                        crate::error::excerpt(n.as_bytes(), 40)
                    ),
                ));
            }
            let disabled = match with_disabled.then(|| record[5].trim().to_ascii_lowercase()) {
                None => false,
                Some(v) if v.is_empty() || v == "0" || v == "false" => false,
                Some(v) if v == "1" || v == "true" => true,
                Some(v) => {
                    return Err(bad(
                        row,
                        format!(
                            "disabled is \"{}\"; write 1 or true to remove the pattern, 0, false or nothing to keep it",
                            crate::error::excerpt(v.as_bytes(), 20)
                        ),
                    ))
                }
            };
            for list in names_of {
                self.change(list, pattern, category, disabled);
            }
        }
        Ok(())
    }

    fn change(&mut self, list: &str, pattern: &str, category: &str, disabled: bool) {
        let at = match self.lists.iter().position(|(n, _)| n == list) {
            Some(at) => at,
            None if disabled => return,
            None => {
                self.lists.push((list.to_string(), Vec::new()));
                self.lists.len() - 1
            }
        };
        let entries = &mut self.lists[at].1;
        let existing = entries.iter().position(|e| e.pattern == pattern);
        match (existing, disabled) {
            (Some(i), true) => {
                entries.remove(i);
            }
            (Some(i), false) => entries[i].category = category.to_string(),
            (None, false) => entries.push(Entry {
                pattern: pattern.to_string(),
                category: category.to_string(),
            }),
            (None, true) => {}
        }
    }

    /// The list `name`, or an error naming the lists there are.
    pub fn get(&self, name: &str) -> Result<&[Entry], Error> {
        match self.lists.iter().find(|(n, _)| n == name) {
            Some((_, entries)) if !entries.is_empty() => Ok(entries),
            Some(_) => Err(Error::Option(format!(
                "the pattern list {name} has no pattern left (every one is disabled in lookups/{LOCAL_FILE}); \
                 enable one there or choose another list"
            ))),
            None => Err(Error::Option(format!(
                "unknown pattern list \"{}\": the lookups define {}; add rows naming it to lookups/{LOCAL_FILE} to make it",
                crate::error::excerpt(name.as_bytes(), 40),
                self.names().join(", ")
            ))),
        }
    }

    /// The list names, in the order they first appear.
    pub fn names(&self) -> Vec<&str> {
        self.lists.iter().map(|(n, _)| n.as_str()).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HEAD: &str = "pattern,category,lists,reference,note\n";

    fn lists(default: &str, local: Option<&str>) -> Result<Lists, Error> {
        Lists::parse(default, "d.csv", local.map(|l| (l, "l.csv".to_string())))
    }

    /// The candidate scan (issue 10) serves the default search's six
    /// patterns, and ESCU v13's 35 (30 fingerprints, more than Teddy serves)
    /// and `extended` (100) with the wide search's buckets shared, where the
    /// CPU has it (benches/RESULTS.md).
    #[test]
    fn the_escu_lists_get_a_candidate_scan() {
        let l = lists(BUILT_IN, None).unwrap();
        let wide = crate::engine::fingerprints::Tables::runs_here();
        for name in l.names() {
            let patterns: Vec<&str> = l.get(name).unwrap().iter().map(|e| e.pattern.as_str()).collect();
            let set = crate::engine::wildcard::PatternSet::new(&patterns).unwrap();
            let prefilter = crate::engine::prefilter::Prefilter::of(&set);
            let (scanned, shared) = match name {
                "escu_v1" => (true, false),
                "escu_v13" | "extended" => (wide, true),
                _ => (false, false),
            };
            assert_eq!(prefilter.is_some(), scanned, "list {name}");
            let Some(prefilter) = prefilter else { continue };
            assert_eq!(prefilter.shares_buckets(), shared, "list {name}");
            // Each literal is found where it stands in a row, in any case.
            for literal in set.required_literals().unwrap() {
                let mut hay = b"\"C:\\x.exe\",\"www.".to_vec();
                hay.extend(literal.to_ascii_uppercase());
                hay.extend(b".com\",0\n");
                let found = prefilter.find(&hay, 0);
                let within = 15..15 + literal.len();
                assert!(found.is_some_and(|f| within.contains(&f)), "{name}: {found:?}");
            }
        }
    }

    #[test]
    fn built_in_lists_load_and_escu_v13_is_upstreams_35() {
        let l = lists(BUILT_IN, None).unwrap();
        assert!(l.names().starts_with(&["escu_v13"]) || l.names().contains(&"escu_v13"));
        let v13: Vec<&str> = l.get("escu_v13").unwrap().iter().map(|e| e.pattern.as_str()).collect();
        assert_eq!(v13.len(), 35);
        assert_eq!(v13[0], "*//objects.githubusercontent.com*");
        assert_eq!(v13[2], "*.argotunnel.com*");
        assert_eq!(v13[34], "*workers.dev*");
        let v1: Vec<&str> = l.get("escu_v1").unwrap().iter().map(|e| e.pattern.as_str()).collect();
        let mut sorted = v1.clone();
        sorted.sort();
        assert_eq!(
            sorted,
            [
                "*discord*",
                "*duckdns.org*",
                "*ngrok.io*",
                "*pastebin*",
                "*pasteio.com*",
                "*textbin*"
            ]
        );
        assert!(l.get("extended").unwrap().len() > 35);
    }

    #[test]
    fn local_rows_add_disable_and_make_lists() {
        let default = format!("{HEAD}*a*,paste,one two,r,\n*b*,chat,one,r,\n");
        let local = "pattern,category,lists,reference,note,disabled\n*a*,x,one,me,,1\n*c*,tunnel,one mine,me,,\n*b*,file sharing,one,me,,0\n";
        let l = lists(&default, Some(local)).unwrap();
        let one: Vec<(&str, &str)> = l
            .get("one")
            .unwrap()
            .iter()
            .map(|e| (e.pattern.as_str(), e.category.as_str()))
            .collect();
        assert_eq!(one, [("*b*", "file sharing"), ("*c*", "tunnel")]);
        assert_eq!(l.get("two").unwrap()[0].pattern, "*a*");
        assert_eq!(l.get("mine").unwrap()[0].pattern, "*c*");
        assert_eq!(l.names(), ["one", "two", "mine"]);
    }

    #[test]
    fn malformed_lookups_name_the_file_row_and_fix() {
        for (default, local, want) in [
            ("", None, "d.csv, row 0: the file is empty"),
            (
                "pattern,category\n",
                None,
                "d.csv, row 0: the header is \"pattern,category\"; it must be pattern,category,lists,reference,note",
            ),
            (
                "pattern,category,lists,reference,note,disabled\n",
                None,
                "it must be pattern,category,lists,reference,note",
            ),
            (
                &format!("{HEAD}*a*,paste,one\n") as &str,
                None,
                "d.csv, row 1: it has 3 values",
            ),
            (
                &format!("{HEAD},paste,one,r,\n"),
                None,
                "row 1: the pattern \"\" is empty",
            ),
            (&format!("{HEAD}*a* *b*,paste,one,r,\n"), None, "holds blanks"),
            (
                &format!("{HEAD}*a*,,one,r,\n"),
                None,
                "row 1: the pattern *a* has no category",
            ),
            (&format!("{HEAD}*a*,paste,,r,\n"), None, "belongs to no list"),
            (&format!("{HEAD}*a*,paste,One,r,\n"), None, "\"One\" is not a list name"),
            (&format!("{HEAD}*a*,paste,one,\"r,\n"), None, "row 1: "),
            (
                HEAD,
                Some("pattern,category,lists,reference,note,disabled\n*a*,p,one,r,,maybe\n"),
                "l.csv, row 1: disabled is \"maybe\"",
            ),
            (HEAD, Some("pattern,lists\n"), "l.csv, row 0: the header"),
        ] {
            let e = lists(default, local).unwrap_err().to_string();
            assert!(e.contains(want), "{e}\nwant {want}");
            assert!(e.starts_with("pattern lookup "), "{e}");
        }
    }

    #[test]
    fn unknown_and_emptied_lists_are_errors_naming_the_fix() {
        let l = lists(
            &format!("{HEAD}*a*,paste,one,r,\n"),
            Some("pattern,category,lists,reference,note,disabled\n*a*,p,one,r,,true\n"),
        )
        .unwrap();
        let e = l.get("nope").unwrap_err().to_string();
        assert!(
            e.contains("unknown pattern list \"nope\": the lookups define one;"),
            "{e}"
        );
        let e = l.get("one").unwrap_err().to_string();
        assert!(e.contains("has no pattern left"), "{e}");
    }
}
