//! The pages' two pictures, as inline SVG drawn by the templates from these shapes: an image's history strip
//! (one mark per verdict, oldest to newest) and the dashboard's verdicts per day and status. No script: a
//! mark's `<title>` is its tooltip, and it links to its job.

use crate::store::VerdictRecord;
use crate::verdict::Status;

/// One rectangle, in the SVG's own units (the SVG scales to the page's width).
pub struct Mark {
    pub x: u32,
    pub y: u32,
    pub w: u32,
    pub h: u32,
    /// The status, as the stylesheet colours it.
    pub class: &'static str,
    pub title: String,
    pub href: String,
}

/// A picture: its size in its own units and its marks.
pub struct Chart {
    pub width: u32,
    pub height: u32,
    pub marks: Vec<Mark>,
    /// What it shows, for readers without the picture.
    pub label: String,
}

const STRIP_MARK: u32 = 10;
const STRIP_HEIGHT: u32 = 24;

/// The history strip of an image: `records` newest first, drawn oldest to newest, left to right, in a
/// strip with room for `room` of them (so that a mark is as wide on every image's page).
pub fn history_strip(records: &[VerdictRecord], room: usize) -> Chart {
    let n = records.len() as u32;
    let marks = records
        .iter()
        .rev()
        .enumerate()
        .map(|(i, r)| Mark {
            x: i as u32 * STRIP_MARK,
            y: 0,
            w: STRIP_MARK - 2,
            h: STRIP_HEIGHT,
            class: r.status.as_str(),
            title: crate::text::inert(&format!("{} {}", r.recorded_at, r.status.as_str()))
                .into_owned(),
            href: super::job_href(&r.job),
        })
        .collect();
    Chart {
        width: (n.max(room as u32) * STRIP_MARK).max(STRIP_MARK),
        height: STRIP_HEIGHT,
        marks,
        label: format!("the {n} newest verdicts, oldest on the left"),
    }
}

/// Verdicts per day: (day `YYYY-MM-DD`, count per status in [`Status::ALL`]'s order), oldest first.
pub type Days = Vec<(String, [u64; 5])>;

/// Counts `records` (newest first) per day of their recording, for at most `days` days ending with the
/// newest one's.
pub fn per_day(records: &[VerdictRecord], days: usize) -> Days {
    let mut out: Days = Vec::new();
    for r in records {
        let Some(day) = r.recorded_at.get(..10) else {
            continue;
        };
        if out.last().is_none_or(|(d, _)| d != day) {
            if out.len() == days {
                break;
            }
            out.push((day.to_string(), [0; 5]));
        }
        if let (Some((_, counts)), Some(i)) = (
            out.last_mut(),
            Status::ALL.iter().position(|s| *s == r.status),
        ) {
            counts[i] += 1;
        }
    }
    out.reverse();
    out
}

const DAY_WIDTH: u32 = 16;
const DAYS_HEIGHT: u32 = 120;

/// Stacked bars, one per day: each status's share of that day's verdicts, the day's total as the bar's
/// height against the busiest day; room for `room` days.
pub fn days_chart(days: &Days, room: usize) -> Chart {
    let busiest = days
        .iter()
        .map(|(_, c)| c.iter().sum::<u64>())
        .max()
        .unwrap_or(0)
        .max(1);
    let mut marks = Vec::new();
    for (i, (day, counts)) in days.iter().enumerate() {
        let mut top = DAYS_HEIGHT;
        for (status, n) in Status::ALL.iter().zip(counts) {
            if *n == 0 {
                continue;
            }
            let h = ((*n * u64::from(DAYS_HEIGHT)).div_ceil(busiest) as u32).min(top);
            top -= h;
            marks.push(Mark {
                x: i as u32 * DAY_WIDTH,
                y: top,
                w: DAY_WIDTH - 3,
                h,
                class: status.as_str(),
                title: format!("{day}: {n} {}", status.as_str()),
                href: format!("/images?status={}", status.as_str()),
            });
        }
    }
    Chart {
        width: (days.len().max(room) as u32 * DAY_WIDTH).max(DAY_WIDTH),
        height: DAYS_HEIGHT,
        marks,
        label: match (days.first(), days.last()) {
            (Some((a, _)), Some((b, _))) => format!("verdicts per day and status, {a} to {b}"),
            _ => "no verdicts yet".into(),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn days_are_counted_per_status_and_stacked_within_the_height() {
        let days: Days = vec![
            ("2026-12-06".into(), [1, 0, 0, 0, 0]),
            ("2026-12-07".into(), [2, 1, 1, 0, 0]),
        ];
        let c = days_chart(&days, 30);
        assert_eq!(c.width, 30 * DAY_WIDTH);
        // The busiest day fills the height; the other is a quarter of it.
        let day2: u32 = c
            .marks
            .iter()
            .filter(|m| m.x == DAY_WIDTH)
            .map(|m| m.h)
            .sum();
        assert_eq!(day2, DAYS_HEIGHT);
        let day1: Vec<&Mark> = c.marks.iter().filter(|m| m.x == 0).collect();
        assert_eq!(day1.len(), 1);
        assert_eq!(day1[0].h, DAYS_HEIGHT / 4);
        assert_eq!(day1[0].class, "reproducible");
        assert!(c.marks.iter().all(|m| m.y + m.h <= DAYS_HEIGHT));
        assert!(c.label.contains("2026-12-06 to 2026-12-07"));
    }
}
