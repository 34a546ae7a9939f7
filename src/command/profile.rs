//! Which ESCU version of the search a command runs (`escu_version=`): the
//! fields it groups by, their defaults and renames, the result columns and
//! the pattern list it starts from. Chosen once per search, like ripgrep's
//! strategy; the engine's hot loop is the same for every profile.

use crate::engine::Grouping;

/// One version of ESCU's search.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Profile {
    /// The `detection_version` it reproduces.
    pub escu_version: u8,
    /// By-fields as read from events, in `stats … by` order.
    pub by_inputs: &'static [&'static str],
    /// `(by-field index, result name)`: the search's `rename`.
    pub renames: &'static [(usize, &'static str)],
    /// `(by-field index, value)` applied when an event has no value
    /// (`eval f=coalesce(f, value)`).
    pub coalesce: &'static [(usize, &'static str)],
    /// v13 writes `firstTime, lastTime, count`; v1-v4 `count, firstTime, lastTime`.
    pub times_before_count: bool,
    /// The pattern list of this version in the app's lookup.
    pub list: &'static str,
    /// Index of `QueryName` among the by-fields: the value a result row's
    /// `matched_pattern` and `category` are worked out from.
    pub query_name: usize,
}

/// ESCU versions 1-4 (and the command's default): six by-fields, `Computer`
/// renamed `dest`.
pub const V4: Profile = Profile {
    escu_version: 4,
    by_inputs: &[
        "Image",
        "QueryName",
        "QueryStatus",
        "process_name",
        "QueryResults",
        "Computer",
    ],
    renames: &[(5, "dest")],
    coalesce: &[],
    times_before_count: false,
    list: "escu_v1",
    query_name: 1,
};

/// ESCU version 13 (detection.md section 9, rules 6-10): the Sysmon add-on's
/// CIM fields, `answer`/`answer_count` coalesced to `none`/`0`, `dvc`
/// renamed `dest`.
pub const V13: Profile = Profile {
    escu_version: 13,
    by_inputs: &[
        "answer",
        "answer_count",
        "dvc",
        "process_exec",
        "process_guid",
        "process_name",
        "query",
        "query_count",
        "reply_code_id",
        "signature",
        "signature_id",
        "src",
        "user_id",
        "vendor_product",
        "QueryName",
        "QueryResults",
        "QueryStatus",
    ],
    renames: &[(2, "dest")],
    coalesce: &[(0, "none"), (1, "0")],
    times_before_count: true,
    list: "escu_v13",
    query_name: 14,
};

/// The extra result columns a list other than the version's own adds.
pub const LABEL_COLUMNS: [&str; 2] = ["category", "matched_pattern"];

impl Profile {
    /// The profile of `escu_version=<version>`.
    pub fn of(version: u8) -> Option<Profile> {
        [V4, V13].into_iter().find(|p| p.escu_version == version)
    }

    /// How the engine groups for this profile.
    pub fn grouping(&self) -> Grouping {
        Grouping {
            fields: self.by_inputs.len(),
            coalesce: self.coalesce.iter().map(|(i, v)| (*i, v.as_bytes().to_vec())).collect(),
        }
    }

    /// Result columns: the by-fields, the aggregates in this version's
    /// order, then `category` and `matched_pattern` when `labelled`.
    pub fn result_columns(&self, labelled: bool) -> Vec<&'static str> {
        let mut columns = self.by_inputs.to_vec();
        for (i, name) in self.renames {
            columns[*i] = name;
        }
        if self.times_before_count {
            columns.extend(["firstTime", "lastTime", "count"]);
        } else {
            columns.extend(["count", "firstTime", "lastTime"]);
        }
        if labelled {
            columns.extend(LABEL_COLUMNS);
        }
        columns
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn profiles_are_consistent() {
        for p in [V4, V13] {
            assert!(p.renames.iter().all(|(i, _)| *i < p.by_inputs.len()));
            assert_eq!(p.by_inputs[p.query_name], "QueryName");
            assert_eq!(Profile::of(p.escu_version), Some(p));
        }
        assert_eq!(V13.by_inputs.len(), 17);
        assert_eq!(V13.result_columns(false)[2], "dest");
        assert_eq!(V4.result_columns(false), crate::command::RESULT_COLUMNS);
        assert_eq!(V13.result_columns(false)[17..], ["firstTime", "lastTime", "count"]);
        assert_eq!(Profile::of(5), None);
    }
}
