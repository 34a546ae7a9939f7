//! The reduce phase: the reporting command the user typed. It counts raw
//! events itself and merges the partial rows of map phases, through one code
//! path, so `distributed=false` (events only) and `distributed=true`
//! (partial rows from the indexers) give the same groups; it answers with the
//! result rows once splunkd says `finished`.

use super::partial::{self, Slots, COUNT, FIRST_TIME, LAST_TIME};
use super::{locate, origin, settle, GroupRows, PhaseRun};
use crate::codec::body::Decoder;
use crate::command::options::Options;
use crate::engine::aggregate::MAX_KEY_FIELDS;
use crate::engine::prefilter::Prefilter;
use crate::engine::{by_slot, Engine, Grouping, TIME_SLOT};
use crate::error::Error;
use crate::protocol::chunk::{write_chunk, write_chunk_streamed};
use crate::protocol::metadata::{self, Metrics};
use std::io::{self, Read, Write};
use std::time::Instant;

/// Fields the reduce asks splunkd for: the event fields, and with
/// `distributed=true` the partial-row columns too, since splunkd may send a
/// command only what it asks for (scp2.md §18.2).
pub fn required_fields(opts: &Options) -> Vec<&str> {
    let mut fields = super::required_fields(opts);
    if opts.distributed {
        fields.extend([COUNT, FIRST_TIME, LAST_TIME]);
    }
    fields
}

/// The reduce phase of one search, across its execute requests.
pub struct Reduce<'o> {
    opts: &'o Options,
    decoder: Decoder,
    engine: Engine<'o>,
    slots: Slots,
    mv_columns: Vec<String>,
    chunks: u64,
    started: Instant,
}

impl<'o> Reduce<'o> {
    /// A reduce phase; its decoder always looks for the partial columns, so
    /// partial rows are recognised whatever `distributed` says.
    pub fn new(opts: &'o Options, grouping: &'o Grouping) -> Self {
        let mut fields = super::required_fields(opts);
        let n = opts.profile.by_inputs.len();
        let match_slot = fields
            .iter()
            .position(|f| *f == opts.field)
            .expect("required_fields lists the match field");
        let event_only = fields
            .iter()
            .enumerate()
            .filter(|(slot, _)| *slot == TIME_SLOT || (*slot == match_slot && match_slot > by_slot(n - 1)))
            .map(|(slot, name)| (slot, name.to_string()))
            .collect();
        let count = fields.len();
        fields.extend([COUNT, FIRST_TIME, LAST_TIME]);
        let mut decoder = Decoder::new(&fields);
        decoder.remember_rows_but(TIME_SLOT);
        if let Some(prefilter) = Prefilter::of(&opts.matcher) {
            // Partial rows are merged whatever they hold: a chunk that has
            // their columns is read row by row.
            decoder.skim_with(prefilter, 0b111 << count);
            decoder.look_for_literals_in(match_slot);
        }
        let mv_columns = (0..fields.len()).map(|i| decoder.mv_column_name(i)).collect();
        let by = opts
            .profile
            .by_inputs
            .iter()
            .enumerate()
            .map(|(i, name)| (by_slot(i), *name))
            .collect();
        Reduce {
            opts,
            decoder,
            engine: Engine::new(&opts.matcher, match_slot, opts.max_groups, grouping),
            slots: Slots::new(by, count, event_only),
            mv_columns,
            chunks: 0,
            started: Instant::now(),
        }
    }
}

impl PhaseRun for Reduce<'_> {
    fn consume(&mut self, body: &mut (dyn Read + Send), chunk: u64, offset: u64) -> Result<(), Error> {
        self.chunks += 1;
        let engine = &mut self.engine;
        let slots = &self.slots;
        let mv_columns = &self.mv_columns;
        let decoded = self.decoder.decode(body, chunk, offset, |row| {
            let located = |e| locate(e, row, chunk, offset, mv_columns);
            match partial::read(row, slots) {
                Ok(None) => engine.offer(row, origin(row)).map_err(located),
                Ok(Some(p)) => {
                    let key: [&[u8]; MAX_KEY_FIELDS] = std::array::from_fn(|i| &p.key[i][..]);
                    let key = &key[..slots.by.len()];
                    let (first, last) = match &p.times {
                        Some((f, l)) => (Some(&f[..]), Some(&l[..])),
                        None => (None, None),
                    };
                    engine.merge(key, p.count, first, last, origin(row)).map_err(located)
                }
                Err((column, detail)) => Err(Error::Body {
                    chunk,
                    row: row.number,
                    offset: offset + row.offset,
                    column: Some(column),
                    detail,
                }),
            }
        });
        settle(engine, decoded, chunk, offset)?;
        self.engine.passed_over(self.decoder.skipped());
        Ok(())
    }

    fn reply(&mut self, finished: bool, out: &mut dyn Write) -> io::Result<()> {
        if !finished {
            return write_chunk(out, metadata::progress_reply(), b"");
        }
        // The reply's helper threads inherit this thread's CPU mask: let
        // them run anywhere.
        self.decoder.let_go();
        let stats = self.engine.stats();
        let counters = self.engine.counters();
        let profile = &self.opts.profile;
        let labels = self.opts.categories.as_deref().map(|categories| {
            (
                &self.opts.matcher,
                &self.opts.patterns[..],
                categories,
                profile.query_name,
            )
        });
        let columns = profile.result_columns(labels.is_some());
        // Sorted and measured first: the chunk header needs the body's length,
        // then the rows stream out behind it.
        let rows = GroupRows::new(stats, &columns, profile.times_before_count, labels);
        let metrics = Metrics {
            chunks: self.chunks,
            events_read: counters.events_read,
            events_matched: counters.events_matched,
            partial_rows: counters.partials_merged,
            groups: rows.rows() as u64,
            memberships: stats.memberships(),
            seconds: self.started.elapsed().as_secs_f64(),
        };
        write_chunk_streamed(out, &metadata::final_reply(&metrics), rows.body_len(), |out| {
            rows.write(out)
        })
    }
}
