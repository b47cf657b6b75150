//! Human tables for the admin subcommands: left-aligned columns, two spaces apart.

/// `rows` under `header`, each column as wide as its widest cell, trailing spaces trimmed.
pub fn table(header: &[&str], rows: &[Vec<String>]) -> String {
    lines(header, rows).into_iter().map(|l| l + "\n").collect()
}

/// The lines of [`table`]: the header first, then one per row.
pub fn lines(header: &[&str], rows: &[Vec<String>]) -> Vec<String> {
    let mut widths: Vec<usize> = header.iter().map(|h| h.len()).collect();
    for r in rows {
        for (w, c) in widths.iter_mut().zip(r) {
            *w = (*w).max(c.chars().count());
        }
    }
    let line = |cells: &mut dyn Iterator<Item = &str>| {
        let s = cells.zip(&widths).map(|(c, w)| format!("{c:<w$}")).collect::<Vec<_>>().join("  ");
        s.trim_end().to_string()
    };
    let mut out = vec![line(&mut header.iter().copied())];
    out.extend(rows.iter().map(|r| line(&mut r.iter().map(String::as_str))));
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn columns_line_up_under_the_widest_cell() {
        let out = super::table(&["NAME", "N"], &[vec!["orders".into(), "3".into()], vec!["a".into(), "12".into()]]);
        assert_eq!(out, "NAME    N\norders  3\na       12\n");
    }
}
