// The page's rules (javascript/negative_prompt_delay_logic.js) on the cases the Python tests use: run by `bash dev
// test` as `node --test tests/js`.
"use strict";
const test = require("node:test");
const assert = require("node:assert");
const path = require("node:path");
const fs = require("node:fs");

const root = path.resolve(__dirname, "..", "..");
const logic = require(path.join(root, "javascript", "negative_prompt_delay_logic.js"));
const cases = JSON.parse(fs.readFileSync(path.join(root, "tests", "delay_cases.json"), "utf8"));

test("a share resolves to the step Python resolves it to", () => {
    for (const [share, steps, expected] of cases.share_to_step) {
        assert.strictEqual(logic.percentToStep(share, steps), expected, `${share} % of ${steps}`);
    }
});

test("descriptions read as the log line writes them", () => {
    for (const [value, percent, steps, text] of cases.describe) {
        assert.strictEqual(logic.describe(value, percent, steps), text);
    }
});

test("a click on the other unit keeps the moment", () => {
    assert.strictEqual(logic.stepToPercent(4, 20), 20);
    assert.strictEqual(logic.percentToStep(logic.stepToPercent(4, 20), 20), 4);
    assert.strictEqual(logic.stepToPercent(30, 20), 100); // at most 100 %
    assert.strictEqual(logic.stepToPercent(1, 3), 33);
});

test("the title says off, never applied, or from where", () => {
    const name = "Negative Prompt Delay";
    assert.strictEqual(logic.title(name, false, 3, false, 20), name);
    assert.strictEqual(logic.title(name, true, 3, false, 20), name + ": from step 3 of 20");
    assert.strictEqual(logic.title(name, true, 20, true, 20), name + ": from 20 % — step 4 of 20");
    assert.strictEqual(logic.title(name, true, 20, false, 20), name + ": on, never applied");
    assert.strictEqual(logic.title(name, true, 100, true, 20), name + ": on, never applied");
});
