//! What a fault rule does on the wire, and what all rules firing on one attempt add up to.

use crate::faults::FaultRule;
pub use crate::faults::WireEffect;
use serde::{Deserialize, Serialize};
use std::time::Duration;
use tracing::warn;

/// The wire effect of `rule`; `None` for kinds that only exist inside an SDK worker (`panic`).
pub fn wire_effect(rule: &FaultRule) -> Option<WireEffect> {
    let effect = rule.action.fault().on_the_wire(&rule.marker());
    if effect.is_none() {
        warn!(
            "fault {} cannot be injected on the wire (it needs code inside the worker); ignored",
            rule.describe()
        );
    }
    effect
}

/// A fault the proxy applied, for the attempt log.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Injection {
    /// The rule's id (its `#n` marker).
    pub rule: usize,
    /// What it does.
    pub effect: WireEffect,
}

/// Everything the proxy does to one attempt: the firing rules' effects, applied in rule order the
/// way the SDK injector applies them (delays add up; a failure or a hang ends the list).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Behaviour {
    /// Total time the worker's answer (or the injected failure) is held.
    pub delay: Duration,
    /// The failure to send instead of running the task.
    pub fail: Option<WireEffect>,
    /// Swallow the worker's answer.
    pub swallow_answer: bool,
    /// Swallow the worker's heartbeats.
    pub swallow_heartbeats: bool,
}

impl Behaviour {
    /// Folds the effects of the rules that fire, in order, into one behaviour; returns it with
    /// the injections that took part.
    pub fn of(effects: impl IntoIterator<Item = Injection>) -> (Self, Vec<Injection>) {
        let mut behaviour = Self::default();
        let mut used = Vec::new();
        for injection in effects {
            let ends = match &injection.effect {
                WireEffect::Fail { .. } => {
                    behaviour.fail = Some(injection.effect.clone());
                    true
                }
                WireEffect::Delay { duration } => {
                    behaviour.delay += *duration;
                    false
                }
                WireEffect::Hang => {
                    behaviour.swallow_answer = true;
                    behaviour.swallow_heartbeats = true;
                    true
                }
                WireEffect::DropHeartbeats => {
                    behaviour.swallow_heartbeats = true;
                    false
                }
            };
            used.push(injection);
            if ends {
                break;
            }
        }
        (behaviour, used)
    }

    /// Whether the proxy leaves the attempt alone.
    pub fn is_pass(&self) -> bool {
        *self == Self::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::faults::FaultAction;
    use crate::faults::{AttemptSelector, DelayFault, ErrorFault, HangFault, PanicFault};

    fn rule(id: usize, action: FaultAction) -> FaultRule {
        FaultRule {
            id,
            activity: "risky".into(),
            attempts: AttemptSelector::All,
            probability: None,
            action,
        }
    }

    fn injection(rule: usize, effect: WireEffect) -> Injection {
        Injection { rule, effect }
    }

    #[test]
    fn each_sdk_kind_maps_to_its_wire_effect() {
        let error = rule(
            3,
            FaultAction::Error(ErrorFault {
                message: "bad".into(),
                error_type: "InvalidInput".into(),
                non_retryable: true,
            }),
        );
        assert_eq!(
            wire_effect(&error),
            Some(WireEffect::Fail {
                error_type: "InvalidInput".into(),
                message: "[chaos fault #3] bad".into(),
                non_retryable: true
            })
        );
        let second = Duration::from_secs(1);
        let delay = rule(1, FaultAction::Delay(DelayFault { duration: second }));
        assert_eq!(wire_effect(&delay), Some(WireEffect::Delay { duration: second }));
        assert_eq!(
            wire_effect(&rule(1, FaultAction::Hang(HangFault {}))),
            Some(WireEffect::Hang)
        );
        let panic = rule(1, FaultAction::Panic(PanicFault { message: "x".into() }));
        assert_eq!(wire_effect(&panic), None);
    }

    #[test]
    fn effects_fold_in_rule_order() {
        let ms = Duration::from_millis;
        let fail = WireEffect::Fail {
            error_type: "T".into(),
            message: "m".into(),
            non_retryable: false,
        };
        let (b, used) = Behaviour::of([
            injection(1, WireEffect::Delay { duration: ms(100) }),
            injection(2, WireEffect::Delay { duration: ms(50) }),
            injection(3, fail.clone()),
            injection(4, WireEffect::Hang),
        ]);
        assert_eq!(b.delay, ms(150));
        assert_eq!(b.fail, Some(fail));
        assert!(!b.swallow_answer, "the hang after the failure never applies");
        assert_eq!(used.iter().map(|i| i.rule).collect::<Vec<_>>(), [1, 2, 3]);

        let (b, _) = Behaviour::of([injection(1, WireEffect::DropHeartbeats)]);
        assert!(b.swallow_heartbeats && !b.swallow_answer && b.fail.is_none() && !b.is_pass());

        let (b, _) = Behaviour::of([injection(1, WireEffect::Hang), injection(2, WireEffect::DropHeartbeats)]);
        assert!(b.swallow_heartbeats && b.swallow_answer);
        assert!(Behaviour::of([]).0.is_pass());
    }
}
