// Negative Prompt Delay: the page's pure logic (no DOM), used by negative_prompt_delay.js and loaded by the Node tests
// (tests/js), which check it against the cases the Python tests use (tests/delay_cases.json).
var NegativePromptDelayLogic = (function () {
    "use strict";

    // p % of S steps starts at step ceil(p * S / 100), as in the extension (lib_negative_delay.settings.Delay.steps);
    // rounded to 1e-6 of a step first, so that 0.7 * 10 = 7.000000000000001 is step 7, not 8
    function percentToStep(percent, steps) {
        return Math.min(steps, Math.ceil(Math.round(percent * steps * 1e6) / 1e8));
    }

    // the share a step count is of S steps, as the unit radio converts it (whole percent, at most 100)
    function stepToPercent(step, steps) {
        return Math.min(100, Math.round((step * 100) / Math.max(1, steps)));
    }

    // "step 4 of 20" or "20 % — step 4 of 20", as lib_negative_delay.settings.Delay.describe writes it
    function describe(value, percent, steps) {
        var where = "step " + (percent ? percentToStep(value, steps) : value) + " of " + steps;
        return percent ? value + " % — " + where : where;
    }

    // the panel's title: off, on and never applied, or on from a step
    function title(name, enabled, value, percent, steps) {
        if (!enabled) {
            return name;
        }
        var step = percent ? percentToStep(value, steps) : value;
        return name + (step >= steps ? ": on, never applied" : ": from " + describe(value, percent, steps));
    }

    return { percentToStep: percentToStep, stepToPercent: stepToPercent, describe: describe, title: title };
})();

if (typeof module !== "undefined" && module.exports) {
    module.exports = NegativePromptDelayLogic;
}
