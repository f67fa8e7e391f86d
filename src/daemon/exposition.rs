//! Which exposition format `/metrics` answers in. prometheus-client writes OpenMetrics; a scraper that
//! does not ask for it (Prometheus' text format 0.0.4: `promtool check metrics`, older Prometheus servers,
//! most agents) gets the same families in the text format, as the Prometheus client libraries negotiate.

use std::collections::HashMap;

/// OpenMetrics' content type.
pub const OPENMETRICS: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";
/// The Prometheus text format's content type.
pub const TEXT: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Whether an `Accept` header asks for OpenMetrics at least as much as for anything else it names. No
/// header, or one that does not name OpenMetrics, gets the text format.
pub fn wants_openmetrics(accept: Option<&str>) -> bool {
    let Some(accept) = accept else {
        return false;
    };
    let mut openmetrics = 0.0f32;
    let mut other = 0.0f32;
    for range in accept.split(',') {
        let mut parts = range.split(';').map(str::trim);
        let media = parts.next().unwrap_or("").to_ascii_lowercase();
        let q = parts
            .filter_map(|p| p.strip_prefix("q="))
            .find_map(|q| q.parse::<f32>().ok())
            .unwrap_or(1.0)
            .clamp(0.0, 1.0);
        match media.as_str() {
            "application/openmetrics-text" => openmetrics = openmetrics.max(q),
            "" => {}
            _ => other = other.max(q),
        }
    }
    openmetrics > 0.0 && openmetrics >= other
}

/// The OpenMetrics exposition `openmetrics` in the Prometheus text format 0.0.4: a counter family is
/// named by its `_total` series, `_created` series, `# UNIT` lines, exemplars and `# EOF` are left out
/// (the text format has none of them), `unknown` is `untyped`, and an `info` or `stateset` family is a
/// gauge.
pub fn to_text_format(openmetrics: &str) -> String {
    let mut types: HashMap<&str, &str> = HashMap::new();
    for line in openmetrics.lines() {
        if let Some((name, kind)) = line
            .strip_prefix("# TYPE ")
            .and_then(|rest| rest.split_once(' '))
        {
            types.insert(name, kind.trim());
        }
    }
    let text_name = |family: &str| -> String {
        match types.get(family).copied() {
            Some("counter") => format!("{family}_total"),
            Some("info") => format!("{family}_info"),
            _ => family.to_string(),
        }
    };
    let mut out = String::with_capacity(openmetrics.len());
    for line in openmetrics.lines() {
        if line == "# EOF" || line.starts_with("# UNIT ") {
            continue;
        }
        if let Some((family, help)) = line
            .strip_prefix("# HELP ")
            .and_then(|rest| rest.split_once(' '))
        {
            // OpenMetrics escapes `"` in help texts; the text format does not.
            let help = help.replace("\\\"", "\"");
            out.push_str(&format!("# HELP {} {help}\n", text_name(family)));
        } else if let Some((family, kind)) = line
            .strip_prefix("# TYPE ")
            .and_then(|rest| rest.split_once(' '))
        {
            let kind = match kind.trim() {
                "unknown" => "untyped",
                "info" | "stateset" => "gauge",
                "gaugehistogram" => "histogram",
                other => other,
            };
            out.push_str(&format!("# TYPE {} {kind}\n", text_name(family)));
        } else if line.starts_with('#') || is_created(line, &types) {
            continue;
        } else {
            // A sample: without its exemplar (` # {…} value`).
            let sample = line.split(" # ").next().unwrap_or(line);
            out.push_str(sample);
            out.push('\n');
        }
    }
    out
}

/// A `_created` series of a counter, histogram or summary family.
fn is_created(line: &str, types: &HashMap<&str, &str>) -> bool {
    let name = line.split(['{', ' ']).next().unwrap_or("");
    name.strip_suffix("_created").is_some_and(|family| {
        matches!(
            types.get(family).copied(),
            Some("counter" | "histogram" | "summary" | "gaugehistogram")
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn openmetrics_only_when_asked_for_first() {
        assert!(!wants_openmetrics(None));
        assert!(!wants_openmetrics(Some("text/plain;version=0.0.4")));
        assert!(!wants_openmetrics(Some("*/*")));
        // Prometheus 2.x's own Accept header.
        assert!(wants_openmetrics(Some(
            "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,\
             text/plain;version=0.0.4;q=0.5,*/*;q=0.1"
        )));
        assert!(!wants_openmetrics(Some(
            "text/plain;version=0.0.4;q=0.9, application/openmetrics-text;q=0.3"
        )));
        assert!(!wants_openmetrics(Some("application/openmetrics-text;q=0")));
    }

    #[test]
    fn families_are_renamed_and_what_the_text_format_lacks_is_left_out() {
        let om = "# HELP reprod_verdicts Verdicts \\\"recorded\\\".\n# TYPE reprod_verdicts counter\n\
                  reprod_verdicts_total{status=\"passed\"} 2\nreprod_verdicts_created{status=\"passed\"} 1.7e9\n\
                  # HELP d Durations.\n# TYPE d histogram\n# UNIT d seconds\nd_bucket{le=\"+Inf\"} 1 # {id=\"x\"} 1.0\n\
                  d_sum 1.5\nd_count 1\n# TYPE b info\nb_info{v=\"1\"} 1\n# TYPE u unknown\nu 3\n# EOF\n";
        assert_eq!(
            to_text_format(om),
            "# HELP reprod_verdicts_total Verdicts \"recorded\".\n# TYPE reprod_verdicts_total counter\n\
             reprod_verdicts_total{status=\"passed\"} 2\n# HELP d Durations.\n# TYPE d histogram\n\
             d_bucket{le=\"+Inf\"} 1\nd_sum 1.5\nd_count 1\n# TYPE b_info gauge\nb_info{v=\"1\"} 1\n\
             # TYPE u untyped\nu 3\n"
        );
    }
}
