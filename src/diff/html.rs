//! A diff report as one self-contained HTML page (`reprod diff --html FILE`): no script, no fetch, its
//! style inline; every value escaped (the names and contents come from the images).

use askama::Template;

use super::DiffReport;

/// One difference as the page shows it.
struct Row {
    class: &'static str,
    location: String,
    field: String,
    a: String,
    b: String,
    text_diff: String,
}

#[derive(Template)]
#[template(path = "diff.html")]
struct Page<'a> {
    a: &'a str,
    b: &'a str,
    schema: &'a str,
    identical: bool,
    equivalent: bool,
    normalizations: String,
    total: usize,
    summary: Vec<(&'static str, usize)>,
    differences: Vec<Row>,
    problems: &'a [String],
}

impl DiffReport {
    /// The report as a self-contained HTML page.
    pub fn html(&self) -> String {
        let shown = |v: &Option<String>| v.clone().unwrap_or_else(|| "(absent)".into());
        let page = Page {
            a: &self.a,
            b: &self.b,
            schema: self.schema,
            identical: self.identical,
            equivalent: self.equivalent_after_normalization,
            normalizations: self
                .normalizations
                .iter()
                .map(|c| c.as_str())
                .collect::<Vec<_>>()
                .join(", "),
            total: self.differences.len(),
            summary: self.summary.iter().map(|(c, n)| (c.as_str(), *n)).collect(),
            differences: self
                .differences
                .iter()
                .map(|d| Row {
                    class: d.class.as_str(),
                    location: d.location.clone(),
                    field: d.field.clone(),
                    a: shown(&d.a),
                    b: shown(&d.b),
                    text_diff: d.text_diff.clone().unwrap_or_default(),
                })
                .collect(),
            problems: &self.problems,
        };
        // Rendering into a String fails only on a template error, which the tests would show.
        page.render()
            .unwrap_or_else(|e| format!("<p>report could not be rendered: {e}</p>"))
    }
}
