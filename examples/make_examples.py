"""Writes examples/tasks_<env>.jsonl: hand-written Code-as-Task records, good and deliberately bad.

Each record's provenance names what it shows and the check reason it must get (`expected_reason`);
tests/test_examples.py checks every one in the sandbox. Rerun after editing: python examples/make_examples.py
"""

import json
import os

HERE = os.path.dirname(os.path.abspath(__file__))


def task(env, env_config, name, expected, instruction, verifier, solution, failure_cases):
    return {
        "id": f"example-{env}-{name}",
        "env": env,
        "env_config": env_config,
        "instruction": instruction,
        "verifier": verifier,
        "solution": solution,
        "failure_cases": failure_cases,
        "provenance": {"source": "examples/make_examples.py", "example": name, "expected_reason": expected},
    }


TRADE = {"domain": "trade_calculator"}
NUM = "def evaluate(state, answer):\n    try:\n        return abs(float(answer) - {v}) < 0.01\n    except (TypeError, ValueError):\n        return False"

CALCULATION = [
    task(
        "calculation",
        TRADE,
        "good_tariff",
        "kept",
        "Goods worth 1200 are converted at a rate of 0.9, then a 5% tariff is charged on the converted price. "
        "What is the final value? Answer with the number only.",
        NUM.format(v=1134.0),
        "price = convert_currency(1200, 0.9)\nanswer = estimate_final_value(price, calculate_tariff(price, 5))",
        [
            "answer = estimate_final_value(1200, calculate_tariff(1200, 5))",
            "answer = convert_currency(1200, 0.9)",
            "answer = calculate_tariff(convert_currency(1200, 0.9), 5)",
        ],
    ),
    task(
        "calculation",
        {"domain": "message_decoder"},
        "good_decode",
        "kept",
        "Decode the hex string '6b686f6f72' to ASCII and then undo a Caesar shift of 3. Answer with the word.",
        "def evaluate(state, answer):\n    return answer == 'hello'",
        "answer = caesar_decode(convert_hex_to_ascii('6b686f6f72'), 3)",
        [
            "answer = convert_hex_to_ascii('6b686f6f72')",
            "answer = caesar_decode(convert_hex_to_ascii('6b686f6f72'), 2)",
        ],
    ),
    task(
        "calculation",
        {"domain": "cryptobotanists_plant_dna_sequencer"},
        "good_dna",
        "kept",
        "Transcribe the DNA sequence ATGCTTAG to mRNA. Answer with the mRNA string.",
        "def evaluate(state, answer):\n    return answer == 'UACGAAUC'",
        "answer = transcribe_dna_to_mrna('ATGCTTAG')",
        ["answer = 'ATGCTTAG'", "answer = reverse_transcribe_mrna_to_dna('ATGCTTAG')"],
    ),
    task(
        "calculation",
        {"domain": "all"},
        "good_uses_tool",
        "kept",
        "Use the calculator tool to compute 17*23. Answer with the number.",
        "def evaluate(state, answer):\n    used = any(c['name'] == 'calculator' for c in state['tool_calls'])\n"
        "    return used and str(answer) == '391'",
        "answer = calculator('17*23')",
        ["answer = 391", "answer = calculator('17*22')"],
    ),
    task(
        "calculation",
        TRADE,
        "lenient_verifier",
        "failure_case_passed",
        "Convert 50 at a rate of 2 and answer with the number.",
        "def evaluate(state, answer):\n    return True",
        "answer = convert_currency(50, 2)",
        ["answer = 0"],
    ),
    task(
        "calculation",
        TRADE,
        "infeasible_solution",
        "solution_rejected",
        "Convert 50 at a rate of 2 and answer with the number.",
        NUM.format(v=101.0),
        "answer = convert_currency(50, 2)",
        ["answer = 0"],
    ),
    task(
        "calculation",
        TRADE,
        "verifier_syntax_error",
        "verifier_syntax_error",
        "Convert 50 at a rate of 2.",
        "def evaluate(state, answer)\n    return answer == 100",
        "answer = convert_currency(50, 2)",
        ["answer = 0"],
    ),
    task(
        "calculation",
        TRADE,
        "no_evaluate_function",
        "verifier_no_evaluate",
        "Convert 50 at a rate of 2.",
        "def check(state, answer):\n    return answer == 100",
        "answer = convert_currency(50, 2)",
        ["answer = 0"],
    ),
    task(
        "calculation",
        TRADE,
        "verifier_crashes",
        "verifier_error",
        "Convert 50 at a rate of 2.",
        "def evaluate(state, answer):\n    return answer['value'] == 100",
        "answer = convert_currency(50, 2)",
        ["answer = 0"],
    ),
    task(
        "calculation",
        TRADE,
        "solution_crashes",
        "solution_error",
        "Convert 50 at a rate of 2.",
        NUM.format(v=100.0),
        "answer = convert_currency(50)",
        ["answer = 0"],
    ),
    task(
        "calculation",
        TRADE,
        "solution_hangs",
        "solution_timeout",
        "Convert 50 at a rate of 2.",
        NUM.format(v=100.0),
        "while True:\n    pass",
        ["answer = 0"],
    ),
    task(
        "calculation",
        TRADE,
        "no_failure_cases",
        "no_failure_cases",
        "Convert 50 at a rate of 2.",
        NUM.format(v=100.0),
        "answer = convert_currency(50, 2)",
        [],
    ),
    task(
        "calculation",
        TRADE,
        "verifier_returns_non_bool",
        "verifier_bad_return",
        "Convert 50 at a rate of 2.",
        "def evaluate(state, answer):\n    return answer",
        "answer = convert_currency(50, 2)",
        ["answer = 0"],
    ),
]

WEB = [
    task(
        "web_browsing",
        {},
        "good_price",
        "kept",
        "Find the price of the Legendary Wand on the shop's web site. Answer with the number only.",
        "def evaluate(state, answer):\n    return '/products/wand/legendary_wand' in state['visited'] and "
        "str(answer) == '85.25'",
        "import re\nclick_url('/products')\nclick_url('/products/wand')\nclick_url('/products/wand/legendary_wand')\n"
        "answer = re.search(r'Price: \\$([0-9.]+)', view()).group(1)",
        [
            "answer = '85.25'",
            "click_url('/products')\nclick_url('/products/wand')\n"
            "click_url('/products/wand/mystical_wand')\nanswer = '137.95'",
        ],
    ),
    task(
        "web_browsing",
        {},
        "lenient_verifier",
        "failure_case_passed",
        "Open the products page.",
        "def evaluate(state, answer):\n    return len(state['history']) >= 0",
        "click_url('/products')",
        ["pass"],
    ),
]

# Retail and airline examples use the default generated worlds (seed 0); ids below exist there.
RETAIL = [
    task(
        "retail",
        {},
        "good_cancel",
        "kept",
        "You are Kenji Suzuki (email kenji.suzuki1589@example.com). You want to cancel your pending order "
        "#W7688726 (a smart thermostat) because you no longer need it.",
        "def evaluate(state, answer):\n    order = state['orders']['#W7688726']\n"
        "    return order['status'] == 'cancelled' and order['cancel_reason'] == 'no longer needed'",
        "user_id = find_user_id_by_email('kenji.suzuki1589@example.com')\n"
        "cancel_pending_order(order_id='#W7688726', reason='no longer needed')\n"
        "answer = 'Your order #W7688726 has been cancelled.'",
        [
            "cancel_pending_order(order_id='#W7688726', reason='ordered by mistake')",
            "answer = 'Your order #W7688726 has been cancelled.'",
            "cancel_pending_order(order_id='#W2609126', reason='no longer needed')",
        ],
    ),
    task(
        "retail",
        {},
        "good_gift_card_balance",
        "kept",
        "You are Kenji Suzuki (email kenji.suzuki1589@example.com). You want to know the balance of your gift card.",
        "def evaluate(state, answer):\n    return '132.18' in str(answer)",
        "import json\nuser = json.loads(get_user_details('kenji_suzuki_5603'))\n"
        "answer = 'Your gift card balance is ' + str(user['payment_methods']['gift_card_1666188']['balance'])",
        ["answer = 'Your gift card balance is 100.00'", "answer = 'I cannot find your gift card.'"],
    ),
    task(
        "retail",
        {},
        "infeasible_cancel_delivered",
        "solution_error",
        "You are Sakura Muller. Cancel your order #W3260162.",
        "def evaluate(state, answer):\n    return state['orders']['#W3260162']['status'] == 'cancelled'",
        "cancel_pending_order(order_id='#W3260162', reason='no longer needed')",
        ["pass"],
    ),
]

AIRLINE = [
    task(
        "airline",
        {},
        "good_add_bag",
        "kept",
        "You are Maya Clark (user id maya_clark_4801). You want to add one checked bag to reservation 2KSA48 and "
        "pay for it with your credit card ending in 2636.",
        "def evaluate(state, answer):\n    r = state['reservations']['2KSA48']\n"
        "    return r['total_baggages'] == 1 and r['nonfree_baggages'] == 1",
        "update_reservation_baggages(reservation_id='2KSA48', total_baggages=1, nonfree_baggages=1, "
        "payment_id='credit_card_4678293')\nanswer = 'One bag added to 2KSA48.'",
        [
            "update_reservation_baggages(reservation_id='2KSA48', total_baggages=2, nonfree_baggages=2, "
            "payment_id='credit_card_4678293')",
            "answer = 'One bag added to 2KSA48.'",
        ],
    ),
    task(
        "airline",
        {},
        "lenient_verifier",
        "failure_case_passed",
        "You are Maya Clark (user id maya_clark_4801). Cancel reservation 2KSA48.",
        "def evaluate(state, answer):\n    return '2KSA48' in state['reservations']",
        "cancel_reservation(reservation_id='2KSA48')",
        ["pass"],
    ),
]

if __name__ == "__main__":
    for name, rows in (("calculation", CALCULATION), ("web_browsing", WEB), ("retail", RETAIL), ("airline", AIRLINE)):
        if not rows:
            continue
        with open(os.path.join(HERE, f"tasks_{name}.jsonl"), "w", encoding="utf-8") as handle:
            for row in rows:
                handle.write(json.dumps(row) + "\n")
        print(f"examples/tasks_{name}.jsonl: {len(rows)} tasks")
