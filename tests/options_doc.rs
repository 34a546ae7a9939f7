//! The options are declared once, in `abusedweb::command::options::OPTIONS`; the help
//! text users read (searchbnf.conf in the search bar, the README) must say the
//! same names and defaults, and the getinfo error must list them.

use abusedweb::command::options::{Options, OPTIONS};

fn read(rel: &str) -> String {
    std::fs::read_to_string(std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(rel)).unwrap()
}

#[test]
fn searchbnf_syntax_lists_exactly_the_declared_options() {
    let bnf = read("default/searchbnf.conf");
    let syntax = bnf.lines().find(|l| l.starts_with("syntax")).expect("a syntax line");
    let named: Vec<&str> = syntax
        .split(|c: char| c.is_whitespace() || c == '(')
        .filter_map(|tok| tok.split_once('=').map(|(name, _)| name))
        .filter(|name| !name.is_empty())
        .collect();
    let declared: Vec<&str> = OPTIONS.iter().map(|o| o.name).collect();
    assert_eq!(named, declared, "{syntax}");
    for o in OPTIONS {
        assert!(
            bnf.contains(o.default),
            "searchbnf.conf lacks the default of {}: {}",
            o.name,
            o.default
        );
    }
}

#[test]
fn readme_documents_every_option_with_its_default() {
    let readme = read("README.md");
    for o in OPTIONS {
        let row = readme
            .lines()
            .find(|l| l.starts_with(&format!("| `{}=", o.name)))
            .unwrap_or_else(|| panic!("README has no table row for {}", o.name));
        assert!(
            row.contains(o.default),
            "README row for {} lacks its default {}",
            o.name,
            o.default
        );
    }
}

#[test]
fn the_error_for_a_bad_option_lists_every_declared_option() {
    let e = Options::parse(&["nope=1".to_string()]).unwrap_err().to_string();
    for o in OPTIONS {
        assert!(e.contains(&format!("{}=", o.name)), "{e}");
    }
}
