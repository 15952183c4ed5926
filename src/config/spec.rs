//! Serde mirror of a pipeline file (SPEC §10): exactly what the user wrote, nothing resolved.
//!
//! `deny_unknown_fields` everywhere, so a typo such as `grain = ` fails at load with the key's
//! name. `${VAR}` interpolation happens on the TOML value tree before this type is built.

use std::collections::BTreeMap;

use serde::Deserialize;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PipelineSpec {
    pub pipeline: PipelineSection,
    /// Raw files that `sql` inputs query by name.
    #[serde(default)]
    pub sources: BTreeMap<String, SourceSpec>,
    #[serde(default)]
    pub inputs: InputsSection,
    #[serde(default)]
    pub metrics: MetricsSection,
    pub output: Option<OutputSection>,
    pub storage: Option<StorageSection>,
}

/// S3-compatible storage; the environment (`AWS_ENDPOINT_URL`, `AWS_REGION`) overrides these.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StorageSection {
    pub endpoint: Option<String>,
    pub region: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PipelineSection {
    pub name: String,
    pub reporting_timezone: Option<String>,
    pub source_timezone: Option<String>,
    pub fiscal_year_start_month: Option<u32>,
    pub grains: Option<Vec<String>>,
    pub metrics: Option<Vec<String>>,
    pub max_reject_fraction: Option<f64>,
}

/// One optional entry per input table of SPEC §2.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InputsSection {
    pub reps: Option<InputSpec>,
    pub teams: Option<InputSpec>,
    pub team_memberships: Option<InputSpec>,
    pub quotas: Option<InputSpec>,
    pub deals: Option<InputSpec>,
    pub deal_history: Option<InputSpec>,
    pub leads: Option<InputSpec>,
    pub activities: Option<InputSpec>,
}

/// A raw file for SQL-derived inputs: read with its own dialect, types inferred.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SourceSpec {
    pub uri: String,
    pub format: Option<String>,
    pub csv: Option<CsvSpec>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InputSpec {
    /// A file (path or glob); or leave it out and give `sql`.
    pub uri: Option<String>,
    /// A polars SQL query over `[sources.*]`, whose result is the input.
    pub sql: Option<String>,
    pub format: Option<String>,
    /// Quotas only: quota rows are months/quarters/... named by `period_start`; fills `period_end`.
    pub quota_grain: Option<String>,
    #[serde(default)]
    pub columns: BTreeMap<String, String>,
    pub csv: Option<CsvSpec>,
    pub status_map: Option<StatusMapSpec>,
    pub max_reject_fraction: Option<f64>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CsvSpec {
    pub delimiter: Option<String>,
    pub date_format: Option<String>,
    pub timestamp_format: Option<String>,
    pub null_values: Option<Vec<String>>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StatusMapSpec {
    #[serde(default)]
    pub won: Vec<String>,
    #[serde(default)]
    pub lost: Vec<String>,
    #[serde(default)]
    pub open: Vec<String>,
    /// Reject rows whose status is in none of won/lost/open (default: anything else is open).
    pub strict: Option<bool>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MetricsSection {
    pub lead_response_time: Option<LeadResponseSpec>,
    pub selling_time: Option<SellingTimeSpec>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LeadResponseSpec {
    pub sla_minutes: Option<Vec<u32>>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SellingTimeSpec {
    #[serde(default)]
    pub selling: Vec<String>,
    #[serde(default)]
    pub non_selling: Vec<String>,
    pub working_minutes_per_day: Option<f64>,
    #[serde(default)]
    pub roles: BTreeMap<String, RoleLists>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RoleLists {
    #[serde(default)]
    pub selling: Vec<String>,
    #[serde(default)]
    pub non_selling: Vec<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OutputSection {
    pub uri: String,
}

impl PipelineSpec {
    /// Parses pipeline text, replacing `${VAR}` in every string through `env`.
    pub fn parse(text: &str, env: &dyn Fn(&str) -> Option<String>) -> Result<PipelineSpec, String> {
        let mut value: toml::Value = toml::from_str(text).map_err(|e| e.to_string())?;
        interpolate(&mut value, env)?;
        PipelineSpec::deserialize(value).map_err(|e| e.to_string())
    }

    pub fn input(&self, table: crate::columns::Table) -> Option<&InputSpec> {
        use crate::columns::Table::*;
        let i = &self.inputs;
        match table {
            Reps => i.reps.as_ref(),
            Teams => i.teams.as_ref(),
            TeamMemberships => i.team_memberships.as_ref(),
            Quotas => i.quotas.as_ref(),
            Deals => i.deals.as_ref(),
            DealHistory => i.deal_history.as_ref(),
            Leads => i.leads.as_ref(),
            Activities => i.activities.as_ref(),
        }
    }
}

fn interpolate(
    value: &mut toml::Value,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<(), String> {
    match value {
        toml::Value::String(s) => *s = expand_vars(s, env)?,
        toml::Value::Array(items) => {
            for v in items {
                interpolate(v, env)?;
            }
        }
        toml::Value::Table(t) => {
            for (_, v) in t.iter_mut() {
                interpolate(v, env)?;
            }
        }
        _ => {}
    }
    Ok(())
}

/// Replaces each `${NAME}` with the variable's value; a missing variable is an error.
pub fn expand_vars(s: &str, env: &dyn Fn(&str) -> Option<String>) -> Result<String, String> {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(pos) = rest.find("${") {
        out.push_str(&rest[..pos]);
        let after = &rest[pos + 2..];
        let end = after
            .find('}')
            .ok_or_else(|| format!("unclosed `${{` in `{s}`"))?;
        let name = &after[..end];
        let val = env(name).ok_or_else(|| {
            format!("environment variable `{name}` used in `{s}` is not set; export it or edit the pipeline file")
        })?;
        out.push_str(&val);
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn no_env(_: &str) -> Option<String> {
        None
    }

    #[test]
    fn unknown_key_is_named() {
        let err = PipelineSpec::parse("[pipeline]\nname = \"x\"\ngrain = [\"month\"]\n", &no_env)
            .unwrap_err();
        assert!(err.contains("unknown field `grain`"), "{err}");
    }

    #[test]
    fn vars_are_expanded_and_missing_ones_fail() {
        let env = |k: &str| (k == "DATA").then(|| "/srv/crm".to_string());
        let spec = PipelineSpec::parse(
            "[pipeline]\nname = \"x\"\n[inputs.reps]\nuri = \"${DATA}/reps.csv\"\n",
            &env,
        )
        .unwrap();
        assert_eq!(
            spec.inputs.reps.unwrap().uri.as_deref(),
            Some("/srv/crm/reps.csv")
        );
        let err = PipelineSpec::parse("[pipeline]\nname = \"${NOPE}\"\n", &no_env).unwrap_err();
        assert!(err.contains("`NOPE`"), "{err}");
    }
}
