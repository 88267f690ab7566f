//! Answers of lightweight transactions, read by column name. Their columns vary with the
//! outcome and the server: Cassandra 5.0 answers `[applied]` alone when applied and
//! `[applied]` plus the current row (its key and the conditioned columns) when not, and only
//! `[applied]` when the row is absent; ScyllaDB is documented to answer every column each
//! time (null when applied), which remains unverified here. Prepared LWTs carry no result
//! metadata; each answer brings its own (docs/cql-node-findings.md, finding 3).

use chorus_actors::StoreError;
use scylla::response::query_result::QueryResult;
use scylla::value::{CqlValue, Row};

use super::backend;

/// One LWT answer: whether it applied, and the columns that came with it.
#[derive(Debug)]
pub(super) struct LwtAnswer {
    pub(super) applied: bool,
    columns: Vec<(String, Option<CqlValue>)>,
}

impl LwtAnswer {
    /// Reads the one row of an LWT's answer.
    pub(super) fn of(result: QueryResult, what: &str) -> Result<LwtAnswer, StoreError> {
        let rows = result.into_rows_result().map_err(|e| backend(what, e))?;
        let names: Vec<String> = rows
            .column_specs()
            .iter()
            .map(|spec| spec.name().to_owned())
            .collect();
        let row: Row = rows.single_row().map_err(|e| backend(what, e))?;
        LwtAnswer::read(names, row.columns).map_err(|e| backend(what, e))
    }

    /// The answer from its column names and values.
    pub(super) fn read(
        names: Vec<String>,
        values: Vec<Option<CqlValue>>,
    ) -> Result<LwtAnswer, &'static str> {
        let columns: Vec<(String, Option<CqlValue>)> = names.into_iter().zip(values).collect();
        let applied = columns
            .iter()
            .find(|(name, _)| name == "[applied]")
            .and_then(|(_, value)| value.as_ref())
            .and_then(CqlValue::as_boolean)
            .ok_or("answer without [applied]")?;
        Ok(LwtAnswer { applied, columns })
    }

    /// A column of the current row, if the answer has it and it is not null.
    pub(super) fn column(&self, name: &str) -> Option<&CqlValue> {
        self.columns
            .iter()
            .find(|(n, _)| n == name)
            .and_then(|(_, value)| value.as_ref())
    }

    /// The column names, in order (tests pin the shapes).
    #[cfg(test)]
    pub(super) fn names(&self) -> Vec<&str> {
        self.columns.iter().map(|(n, _)| n.as_str()).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answer(names: &[&str], values: Vec<Option<CqlValue>>) -> LwtAnswer {
        LwtAnswer::read(names.iter().map(|n| (*n).to_owned()).collect(), values)
            .expect("an LWT answer")
    }

    fn text(s: &str) -> Option<CqlValue> {
        Some(CqlValue::Text(s.to_owned()))
    }

    #[test]
    fn cassandra_shapes_read_by_name() {
        // Applied: `[applied]` alone.
        let a = answer(&["[applied]"], vec![Some(CqlValue::Boolean(true))]);
        assert!(a.applied);
        assert_eq!(a.column("owner"), None);
        // Not applied: the current row after `[applied]`.
        let a = answer(
            &["[applied]", "claim", "owner"],
            vec![Some(CqlValue::Boolean(false)), text("probe"), text("a")],
        );
        assert!(!a.applied);
        assert_eq!(a.column("owner"), text("a").as_ref());
        // Not applied, row absent: `[applied]` alone.
        let a = answer(&["[applied]"], vec![Some(CqlValue::Boolean(false))]);
        assert!(!a.applied && a.column("last_seq").is_none());
    }

    #[test]
    fn scylla_shape_and_any_column_order_read_by_name() {
        // Every column each time, null when applied.
        let a = answer(
            &["[applied]", "log", "last_seq"],
            vec![Some(CqlValue::Boolean(true)), None, None],
        );
        assert!(a.applied && a.column("last_seq").is_none());
        // `[applied]` need not come first.
        let a = answer(
            &["last_seq", "[applied]"],
            vec![Some(CqlValue::BigInt(7)), Some(CqlValue::Boolean(false))],
        );
        assert!(!a.applied);
        assert_eq!(a.column("last_seq"), Some(&CqlValue::BigInt(7)));
        assert!(LwtAnswer::read(vec!["owner".into()], vec![text("a")]).is_err());
        assert!(
            LwtAnswer::read(vec!["[applied]".into()], vec![None]).is_err(),
            "a null [applied] is no answer"
        );
    }
}
