"""What each table says, in one sentence with its numbers (the end of `kit table` and of `kit run`):

    Table 1: a level-1 wake switched 622× (A) / 194× (B) faster than a restart; end to end 3.7× faster
    (published A100: 153× / 71×, 2.9×)

    print(summary.text(tables, width))      tables: build_table's Tables

A ratio whose loads were not in one compile-cache state is 'not comparable' here as in the table.
"""
from kit.results.render import WIDTH, wrap

# table -> (the test arm's switch, the control arm's), as the sentence names them
SWITCHES = {1: ("a level-1 wake", "a restart"), 2: ("a bf16 level-1 wake", "an fp8 one"),
            3: ("a level-1 wake with warm-up", "one without"), 4: ("a level-1 wake", "a level-2 wake"),
            5: ("a level-2 wake", "a restart")}
PROMPTS = (2, 3)        # the tables whose arms differ in how fast a prompt runs, not only in the switch


def factor(r):
    """A ratio of times as 'how many times faster': 622, 3.7, 1.48."""
    return f"{r:.0f}" if r >= 10 else f"{r:.1f}" if r >= 2 else f"{r:.2f}"


def _speeds(ratios, labels, implied=None):
    """Ratios (control / test) as the test arm's speed-ups. implied None: '622× (A) / 194× (B) faster' when
    all go one way, else each with its own word ('1.24× slower (A) / 1.02× faster (B)'); implied 'faster' or
    'slower' (the word the sentence already said): bare numbers if all go that way, else each with its word."""
    words = ["faster" if r >= 1 else "slower" for r in ratios]
    each = [f"{factor(r if r >= 1 else 1 / r)}×" + (f" ({m})" if m else "") for r, m in zip(ratios, labels)]
    if implied and set(words) == {implied}:
        return " / ".join(each)
    if implied is None and len(set(words)) == 1:
        return " / ".join(each) + f" {words[0]}"
    return " / ".join(e.replace("×", f"× {w}", 1) for e, w in zip(each, words))


def _clause(rows, models, words):
    """One metric's clause ('a level-1 wake switched 622× (A) / 194× (B) faster than a restart'), its
    published numbers ('153× / 71×'), whether a load's cache state is unknown, and why it is not comparable."""
    reasons = list(dict.fromkeys(r.reason for r in rows if r.not_comparable))
    if reasons or any(r.ratio is None for r in rows):
        return None, None, False, reasons
    ratios = [r.ratio for r in rows]
    said = words.format(_speeds(ratios, models if len(rows) > 1 else [None], None))
    pubs = [r.published[0].ratio if r.published else None for r in rows]
    one_way = {"faster" if x >= 1 else "slower" for x in ratios}
    pub = _speeds(pubs, [None] * len(pubs), one_way.pop() if len(one_way) == 1 else "") if all(pubs) else None
    return said, pub, any(r.cache_state == "unknown" for r in rows), []


def sentence(table):
    n = table.number
    head = f"Table {n}:"
    missing = [f"{s.arm} {s.state.upper() if s.state == 'failed' else s.state}" for s in table.arms if not s.has_numbers]
    if missing:
        return f"{head} no ratios ({', '.join(missing)})"
    test, control = SWITCHES[n]
    metrics = [("switch", ["A", "B"], f"{test} switched {{}} than {control}", "the switch")]
    metrics += [("prompt", ["A", "B"], "its prompts ran {}", "prompts")] if n in PROMPTS else []
    metrics += [("total", [None], "end to end {}", "end to end")]
    said, pubs, unknown, reasons = [], [], [], []
    for metric, models, words, noun in metrics:
        found = [table.row(metric, m) for m in models]
        if not all(found):
            continue
        clause, pub, unsure, why = _clause(found, models, words)
        if why:
            reasons.append(f"{noun} not comparable: " + "; ".join(w.removeprefix("not comparable: ") for w in why))
        if clause:
            said.append(clause)
            pubs += [pub] if pub else []
            unknown += [noun] if unsure else []
    text = f"{head} " + "; ".join(said + reasons)
    if unknown:
        text += f"; compile cache unknown for {' and '.join(unknown)}"
    if pubs and table.published:
        text += f" (published {table.published[0].gpu}: {', '.join(pubs)})"
    if any(s.state == "suspect" for s in table.arms):
        text += " - SUSPECT: a sleep check failed"
    return text


def lines(tables):
    return [sentence(t) for t in tables]


def text(tables, width=WIDTH):
    """The sentences under a heading, each wrapped to `width` columns (None: not wrapped)."""
    said = [wrap(s, width) if width else s for s in lines(tables)]
    return "\n".join(["In short:"] + said) + "\n"
