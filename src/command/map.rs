//! The map phase: splunkd runs it on each indexer (or locally) as a
//! streaming command, and it answers every request with the partial rows of
//! that request's matching events, so only groups travel to the search head.
//! Nothing is kept between requests but the counters.

use super::partial::partial_columns;
use super::{locate, origin, required_fields, settle, write_groups, PhaseRun};
use crate::codec::body::Decoder;
use crate::command::options::Options;
use crate::engine::prefilter::Prefilter;
use crate::engine::{Engine, Grouping, TIME_SLOT};
use crate::error::Error;
use crate::protocol::chunk::write_chunk;
use crate::protocol::metadata::{self, Metrics};
use std::io::{self, Read, Write};
use std::time::Instant;

/// The map phase of one search.
pub struct Map<'o> {
    opts: &'o Options,
    decoder: Decoder,
    mv_columns: Vec<String>,
    match_slot: usize,
    grouping: Grouping,
    columns: Vec<&'static str>,
    /// The current request's partial rows.
    pending: Vec<u8>,
    totals: Metrics,
    started: Instant,
}

impl<'o> Map<'o> {
    /// A map phase reading the fields of [`required_fields`].
    pub fn new(opts: &'o Options) -> Self {
        let fields = required_fields(opts);
        let mut decoder = Decoder::new(&fields);
        decoder.remember_rows_but(TIME_SLOT);
        if let Some(prefilter) = Prefilter::of(&opts.matcher) {
            decoder.skim_with(prefilter, 0);
        }
        let mv_columns = (0..fields.len()).map(|i| decoder.mv_column_name(i)).collect();
        let match_slot = fields
            .iter()
            .position(|f| *f == opts.field)
            .expect("required_fields lists the match field");
        Map {
            opts,
            decoder,
            mv_columns,
            match_slot,
            grouping: opts.profile.grouping(),
            columns: partial_columns(opts.profile.by_inputs),
            pending: Vec::new(),
            totals: Metrics::default(),
            started: Instant::now(),
        }
    }
}

impl PhaseRun for Map<'_> {
    fn consume(&mut self, body: &mut (dyn Read + Send), chunk: u64, offset: u64) -> Result<(), Error> {
        let mut engine = Engine::new(
            &self.opts.matcher,
            self.match_slot,
            self.opts.max_groups,
            &self.grouping,
        );
        let mv_columns = &self.mv_columns;
        let decoded = self.decoder.decode(body, chunk, offset, |row| {
            engine
                .offer(row, origin(row))
                .map_err(|e| locate(e, row, chunk, offset, mv_columns))
        });
        settle(&mut engine, decoded, chunk, offset)?;
        engine.passed_over(self.decoder.skipped());
        self.pending.clear();
        let rows = write_groups(engine.stats(), &self.columns, false, None, &mut self.pending) as u64;
        let counters = engine.counters();
        self.totals.chunks += 1;
        self.totals.events_read += counters.events_read;
        self.totals.events_matched += counters.events_matched;
        self.totals.memberships += engine.stats().memberships();
        self.totals.groups += rows;
        Ok(())
    }

    fn reply(&mut self, finished: bool, out: &mut dyn Write) -> io::Result<()> {
        self.totals.seconds = self.started.elapsed().as_secs_f64();
        let written = write_chunk(out, &metadata::map_reply(finished, &self.totals), &self.pending);
        self.pending = Vec::new();
        written
    }
}
