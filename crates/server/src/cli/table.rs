//! The tables of the CLI's human output: a header row, a rule of dashes under it, and
//! columns aligned by content width, two spaces apart. Plain ASCII with no colours and
//! no borders, so the same text reads well on a terminal, in `journalctl` and in a
//! pasted ticket, and `grep` finds a row whole. `--json` never goes through here.

use comfy_table::{CellAlignment, ContentArrangement, LineStyle, Table, TableStyle};

/// Only a rule under the header; everything else is spacing.
const STYLE: TableStyle =
    TableStyle::new().header_separator(LineStyle::none().fill('-').junction(' '));

/// A table with this header row. Long cells are never wrapped (a terminal width is not
/// known in a pipe, and a wrapped id cannot be copied).
pub fn new(header: &[&str]) -> Table {
    let mut t = Table::new();
    t.load_style(STYLE)
        .set_content_arrangement(ContentArrangement::Disabled)
        .set_header(header.to_vec());
    for c in t.column_iter_mut() {
        // With the junction's space, two spaces between columns and none before the first.
        c.set_padding((0, 1));
    }
    t
}

/// Aligns these columns (0-based) to the right: amounts and counts, so digits line up.
pub fn right(t: &mut Table, columns: &[usize]) {
    for &i in columns {
        if let Some(c) = t.column_mut(i) {
            c.set_cell_alignment(CellAlignment::Right);
        }
    }
}

/// Prints the table to stdout without trailing spaces.
pub fn print(t: &Table) {
    outln!("{}", t.trim_fmt());
}

#[cfg(test)]
mod tests {
    #[test]
    fn columns_align_under_a_header_and_its_rule() {
        let mut t = super::new(&["ID", "NAME", "CREDITS"]);
        t.add_row(vec!["prod_1", "Pack", "10"]);
        t.add_row(vec!["prod_22", "Bigger pack", "1000"]);
        super::right(&mut t, &[2]);
        assert_eq!(
            t.trim_fmt(),
            "ID       NAME         CREDITS\n\
             -------- ------------ --------\n\
             prod_1   Pack              10\n\
             prod_22  Bigger pack     1000"
        );
    }
}
