"""Reviews with planted themes, for the topic model's tests: in each language, 30 about a
strap that breaks (negative), 30 about fast delivery (positive) and 20 about unrelated
things, each said in many ways, so a theme is found by its words and not by one sentence."""

from __future__ import annotations

from itertools import cycle, islice

STRAP_EN = [
    "The strap broke after {n} days.",
    "Strap snapped on day {n}, really disappointed.",
    "After {n} weeks the strap broke at the buckle. Poor.",
    "The strap is flimsy and broke within {n} days.",
    "My strap broke the {n}th time I wore it. Not happy.",
    "Cheap strap, it broke after {n} uses.",
]
DELIVERY_EN = [
    "Fast delivery, arrived in {n} days.",
    "Delivery was super fast, here within {n} days!",
    "Really fast delivery, came {n} days early. Great.",
    "Arrived fast, delivery took only {n} days.",
    "Impressed by the fast delivery: {n} days door to door.",
    "Quick delivery, arrived fast in {n} days, thanks!",
]
NOISE_EN = [
    "The colour is a nice shade of green.",
    "Bought it as a gift for my sister's birthday.",
    "The manual is printed in tiny letters.",
    "Smells a little like plastic when new.",
    "My cat sleeps on the box now.",
    "Fits on the shelf next to the books.",
    "Battery lasts about a weekend of hiking.",
    "The instructions mention a warranty card.",
    "Heavier than my old one, feels solid.",
    "Matches the curtains in the living room.",
    "Our neighbour asked where we found it.",
    "The logo is printed upside down, funny.",
    "Works with the old charger from my drawer.",
    "Kids argue over whose turn it is.",
    "Left it in the garage over winter.",
    "Goes well with a cup of tea.",
    "The handle is left-handed friendly.",
    "Has a faint lavender scent.",
    "I use it for knitting patterns.",
    "Came with a spare screw.",
]
STRAP_ZH = [
    "表带用了{n}天就断了，太差了。",
    "带子才{n}天就断了，很失望。",
    "表带戴了{n}周在扣子那里断了。",
    "表带质量不行，{n}天就断了。",
    "第{n}次戴表带就断了，不开心。",
    "表带太薄，用了{n}次就断了。",
]
DELIVERY_ZH = [
    "发货很快，{n}天就到了。",
    "快递速度很快，{n}天就收到了！",
    "物流超快，提前{n}天送到，好评。",
    "送货很快，只用了{n}天就到了。",
    "配送速度很快，{n}天送到家门口。",
    "到货很快，{n}天就到了，谢谢！",
]
NOISE_ZH = [
    "颜色是很好看的绿色。",
    "买来送给妹妹当生日礼物。",
    "说明书上的字太小了。",
    "刚拆开的时候有点塑料味。",
    "我家的猫现在天天睡在盒子里。",
    "放在书架上正好合适。",
    "电池可以用一个周末的徒步。",
    "说明书里有一张保修卡。",
    "比我原来那个重一些，感觉很结实。",
    "和客厅的窗帘很配。",
    "邻居问我在哪里买的。",
    "标志印反了，挺有意思。",
    "可以用抽屉里的旧充电器。",
    "孩子们抢着玩。",
    "冬天一直放在车库里。",
    "配一杯茶刚刚好。",
    "把手左撇子也能用。",
    "有一点淡淡的薰衣草香。",
    "我用它来看编织图案。",
    "附带一颗备用螺丝。",
]


def themed(templates: list[str], count: int) -> list[str]:
    return [t.format(n=n) for n, t in zip(range(2, 2 + count), islice(cycle(templates), count))]


def planted_reviews(language: str) -> dict[str, list[str]]:
    """theme -> texts: `strap` and `delivery` (30 each), `noise` (20)."""
    strap, delivery, noise = (
        (STRAP_EN, DELIVERY_EN, NOISE_EN) if language == "en" else (STRAP_ZH, DELIVERY_ZH, NOISE_ZH)
    )
    return {
        "strap": themed(strap, 30),
        "delivery": themed(delivery, 30),
        "noise": list(noise),
    }
