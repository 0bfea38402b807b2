"""Chapter 15, the model that sees: pictures from the world, patches, the prefix input of the
language model, the loss mask, the baselines, a tiny model that learns to tell two colours apart,
and stage `vision` built end to end."""
import json

import numpy as np
import pytest
import torch

from course_utils import config, stages, vision
from course_utils.model import GPT, GPTConfig, IGNORE_INDEX, model_from_stage, model_meta, save_model_files
from course_utils.tokenizer import Tokenizer
from course_utils.world import COUNTRIES, build_world
from course_utils.world import images as I


@pytest.fixture(autouse=True)
def one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


BYTES = Tokenizer([])


def tiny_lm(seed=0, **overrides):
    torch.manual_seed(seed)
    return GPT(GPTConfig(**{**dict(vocab_size=BYTES.vocab_size, block_size=128, n_layer=2, n_head=2, n_embd=32),
                            **overrides}))


def tiny_vision(lm, seed=1, **overrides):
    vcfg = vision.VisionConfig(n_embd=lm.config.n_embd, width=32, n_layer=1, n_head=2, **overrides)
    return vision.new_vision_chat(lm, BYTES, vcfg, seed=seed)


# ----------------------------------------------------------------------------- the pictures

def blobs(mask: np.ndarray) -> int:
    """Connected groups of True pixels (4-neighbours), by flood fill."""
    seen = np.zeros_like(mask)
    count = 0
    for start in zip(*np.nonzero(mask)):
        if seen[start]:
            continue
        count += 1
        stack = [start]
        while stack:
            r, c = stack.pop()
            if 0 <= r < mask.shape[0] and 0 <= c < mask.shape[1] and mask[r, c] and not seen[r, c]:
                seen[r, c] = True
                stack += [(r + 1, c), (r - 1, c), (r, c + 1), (r, c - 1)]
    return count


def test_pictures_are_deterministic_per_seed_and_split():
    world = build_world()
    a, b = I.image_questions(world, "test", 12), I.image_questions(world, "test", 12)
    assert [(q.question, q.answer) for q in a] == [(q.question, q.answer) for q in b]
    assert all(np.array_equal(x.image, y.image) for x, y in zip(a, b))
    train = I.image_questions(world, "train", 12)
    assert not any(np.array_equal(x.image, y.image) for x, y in zip(a, train))  # held-out pictures are new drawings
    other = I.image_questions(build_world(seed=7), "test", 12)
    assert not all(np.array_equal(x.image, y.image) for x, y in zip(a, other))
    for qa in a:
        assert qa.image.shape == (*I.IMAGE_SIZE, 3) and qa.image.dtype == np.float32
        assert 0.0 <= qa.image.min() and qa.image.max() <= 1.0 and qa.kind in I.KINDS


def test_every_country_has_a_flag_unlike_every_other():
    assert set(I.FLAGS) == {c.name for c in COUNTRIES}
    drawn = {name: I.draw_flag(name) for name in I.FLAGS}
    names = sorted(drawn)
    closest = min(np.abs(drawn[a] - drawn[b]).mean() for i, a in enumerate(names) for b in names[i + 1:])
    assert closest > 0.01  # no two flags are the same picture
    for name, flag in I.FLAGS.items():
        assert flag.parts and all(colour in I.COLOURS for colour in flag.parts.values()), name


def test_questions_have_the_exact_answers_of_their_picture():
    qas = I.flag_questions("Germany", I.draw_flag("Germany"))
    assert {(q.question, q.answer) for q in qas} == {("Which country's flag is this?", "Germany"),
                                                     ("What colour is the top stripe of this flag?", "black"),
                                                     ("What colour is the bottom stripe of this flag?", "yellow")}
    img = I.draw_flag("Germany")
    assert np.allclose(img[4, 16], I.COLOURS["black"]) and np.allclose(img[19, 16], I.COLOURS["yellow"])
    scene = I.Scene("circle", "green", 3)
    image = I.draw_scene(scene, np.random.default_rng(0), noise=0.0, jitter=0.0)
    green = np.all(np.isclose(image, I.COLOURS["green"]), axis=-1)
    assert blobs(green) == 3  # connected blobs of green: the circles
    assert [(q.question, q.answer) for q in I.scene_questions(scene, image)] == [
        ("How many circles are there?", "3"), ("What colour are the circles?", "green")]


# ----------------------------------------------------------------------------- patches and images in

def test_patchify_round_trip_and_reading_order():
    images = torch.rand(2, 24, 32, 3, generator=torch.Generator().manual_seed(0))
    patches = vision.patchify(images, 8)
    assert patches.shape == (2, 12, 8 * 8 * 3)
    assert torch.equal(vision.unpatchify(patches, (24, 32), 8), images)
    # Patch 1 is the second square of the top row; patch 4 the first of the second row.
    assert torch.equal(patches[0, 1].view(8, 8, 3), images[0, :8, 8:16])
    assert torch.equal(patches[1, 4].view(8, 8, 3), images[1, 8:16, :8])


def test_wrong_size_or_non_rgb_images_are_refused_clearly():
    ok = np.zeros((24, 32, 3), np.float32)
    assert vision.as_images(ok).shape == (1, 24, 32, 3)
    assert torch.allclose(vision.as_images(np.full((24, 32, 3), 255, np.uint8)), torch.ones(1, 24, 32, 3))
    with pytest.raises(vision.ImageError, match=r"24x32 pixels.*got 32x32"):
        vision.as_images(np.zeros((32, 32, 3), np.float32))
    with pytest.raises(vision.ImageError, match="RGB"):
        vision.as_images(np.zeros((24, 32), np.float32))  # grey
    with pytest.raises(vision.ImageError, match="RGB"):
        vision.as_images(np.zeros((24, 32, 4), np.float32))  # RGBA
    with pytest.raises(vision.ImageError, match=r"\[0, 1\]"):
        vision.as_images(np.full((24, 32, 3), 2.0, np.float32))
    model = tiny_vision(tiny_lm())
    with pytest.raises(vision.ImageError):
        vision.answer(model, BYTES, np.zeros((24, 24, 3), np.float32), ["What is this?"])


# ----------------------------------------------------------------------------- the prefix input

def test_text_only_logits_are_those_of_the_plain_model():
    lm = tiny_lm().eval()
    idx = torch.randint(0, BYTES.vocab_size, (2, 20), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():  # (with gradients on, RMSNorm takes another, as exact, path: compare like with like)
        logits, _ = lm(idx)
        # The text-only path computed by hand: embedding, blocks, norm, head.
        x = lm.tok_emb(idx)
        for block in lm.blocks:
            x, _ = block(x)
        assert torch.equal(logits, lm.lm_head(lm.norm(x)))
    # Attaching a vision tower and training it (language model frozen) leaves text-only logits bitwise alone.
    model = tiny_vision(lm)
    vision.freeze_language_model(model)
    images = torch.rand(2, 24, 32, 3, generator=torch.Generator().manual_seed(1))
    y = torch.full((2, 4), ord("a"))
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-2)
    for _ in range(3):
        _, loss = model(images, idx[:, :4], y, torch.ones(2, 4))
        loss.backward()
        opt.step()
        opt.zero_grad()
    with torch.no_grad():
        assert torch.equal(lm(idx)[0], logits)


def test_a_prefix_is_read_exactly_like_tokens_and_fills_the_cache():
    lm = tiny_lm().eval()
    ids = torch.randint(0, BYTES.vocab_size, (2, 14), generator=torch.Generator().manual_seed(0))
    full, _ = lm(ids)
    with torch.no_grad():
        part, _ = lm(ids[:, 5:], prefix_embeds=lm.tok_emb(ids[:, :5]))
        assert torch.allclose(part, full[:, 5:], atol=1e-5)  # only the tokens' logits come back
        cache = lm.new_kv_cache()
        lm(ids[:, 5:13], kv_cache=cache, prefix_embeds=lm.tok_emb(ids[:, :5]))
        assert cache.pos == 13
        assert torch.allclose(lm.decode_step(ids[:, 13:14], cache), full[:, 13], atol=1e-5)
    with pytest.raises(ValueError, match="exceed the context"):
        lm(ids, prefix_embeds=torch.zeros(2, 120, 32))


def test_greedy_answers_match_the_full_forward():
    model = tiny_vision(tiny_lm(block_size=256)).eval()
    qas = I.image_questions(build_world(), "val", 6)
    replies = vision.answer(model, BYTES, np.stack([q.image for q in qas]), [q.question for q in qas],
                            max_new_tokens=5)
    head = model.head_ids.tolist()
    for qa, reply in zip(qas, replies):
        ids = vision.encode_prompt(qa.question, BYTES, head)
        written = []
        for _ in range(5):  # no cache: the whole context each time
            logits, _ = model(qa.image, torch.tensor([ids + written]))
            t = int(logits[0, -1].argmax())
            if t in vision._stop_ids(BYTES):
                break
            written.append(t)
        assert reply == BYTES.decode(written)


# ----------------------------------------------------------------------------- loss mask and baselines

def test_only_the_answer_and_its_end_token_are_trained_on():
    world = build_world()
    qas = I.image_questions(world, "train", 8)
    head = vision.user_head_ids(BYTES)
    assert BYTES.decode(head) == "<|endoftext|><|im_start|>user\n"
    data = vision.VisionBatches(qas, qas[:2], BYTES, head)
    batch = data("train", 8, torch.Generator().manual_seed(0))
    assert batch["images"].shape == (8, 24, 32, 3) and batch["x"].shape == batch["y"].shape == batch["mask"].shape
    answers = {q.answer + "<|im_end|>" for q in qas}
    for y, m in zip(batch["y"], batch["mask"]):
        trained = BYTES.decode([int(t) for t, k in zip(y, m) if k])
        assert trained in answers
    # Padding is never trained on: a right-padded row ends with -100 targets and mask 0.
    lengths = (batch["y"] != IGNORE_INDEX).sum(1)
    assert lengths.min() < batch["y"].size(1) and batch["mask"][lengths.argmin(), -1] == 0


def test_baselines_chance_constant_blank_and_shuffled():
    img = np.zeros((24, 32, 3), np.float32)
    qas = [I.ImageQA(img, "How many circles are there?", a, "count", "") for a in "1123"] + \
          [I.ImageQA(img, "What colour are the circles?", "red", "colour", ""),
           I.ImageQA(img, "What colour is the top stripe of this flag?", "blue", "colour", "")]
    out = vision.chance_and_constant(qas)
    assert out["count"]["chance"] == pytest.approx(1 / 3) and out["count"]["constant"] == 0.5
    assert out["count"]["constant_answer"] == "1"
    assert out["colour"]["constant"] == 0.5 and out["colour"]["text_prior"] == 1.0  # the wording gives it away
    real = I.image_questions(build_world(), "val", 9)
    shuffled = vision.shuffled_images(real, seed=3)
    for k, qa in enumerate(real):
        assert not np.array_equal(shuffled[k], qa.image)  # nobody keeps their own picture
    assert sorted(map(bytes, shuffled)) == sorted(bytes(q.image) for q in real)  # every picture used once
    blank = vision.blank_images(2)
    assert blank.shape == (2, 24, 32, 3) and np.ptp(blank) == 0
    assert vision.is_correct(" Red.", "red") and not vision.is_correct("red circles", "red")


# ----------------------------------------------------------------------------- learning

def two_colour_task(split, n, seed):
    """Pictures of circles, red or blue; the question asks their colour."""
    rng = np.random.default_rng(seed)
    out = []
    for k in range(n):
        scene = I.Scene("circle", ("red", "blue")[k % 2], int(rng.integers(1, 5)))
        out.append(I.scene_questions(scene, I.draw_scene(scene, rng))[1])
    return out


def test_a_tiny_model_learns_two_colours_from_the_picture():
    model = tiny_vision(tiny_lm(n_embd=48))
    train_qas, test_qas = two_colour_task("train", 64, 0), two_colour_task("test", 40, 1)
    data = vision.VisionBatches(train_qas, test_qas, BYTES, model.head_ids.tolist())
    before = vision.evaluate_images(model, BYTES, test_qas)["colour"]
    cfg = vision.finetune_config(max_steps=60, batch_size=16, lr=1e-2, warmup_steps=5, eval_batches=0)
    vision.train(model, data, cfg, loss_fn=vision.vision_loss, progress=False, verbose=False)
    after = vision.evaluate_images(model, BYTES, test_qas)
    blank = vision.evaluate_images(model, BYTES, test_qas, images=vision.blank_images(len(test_qas)))
    assert before == 0.0 and after["colour"] == 1.0
    # Without the picture it can only guess: at best the constant answer, right half the time.
    assert blank["colour"] <= vision.chance_and_constant(test_qas)["colour"]["constant"] == 0.5


def test_answer_attention_is_a_distribution_over_the_patch_grid():
    model = tiny_vision(tiny_lm())
    qa = two_colour_task("test", 1, 0)[0]
    grid = vision.answer_attention(model, BYTES, qa)
    assert grid.shape == model.vision.config.grid and np.isclose(grid.sum(), 1.0) and (grid >= 0).all()
    first_layer = vision.answer_attention(model, BYTES, qa, layers=[0])
    assert np.isclose(first_layer.sum(), 1.0)


# ----------------------------------------------------------------------------- the stage

CHAT_SKILLS = ("known_fact_accuracy", "unknown_idk_rate", "arithmetic_tool_accuracy", "end_token_rate")


def fake_sft_tools():
    """A tiny `sft_tools` stage (byte tokenizer) and a `clean` stage that records the world seed."""
    lm = tiny_lm(block_size=128)
    doc = json.dumps({"id": "d", "lang": "en", "text": "The capital of France is Paris. " * 10})
    stages.save_stage("clean", {"train.jsonl": doc + "\n", "val.jsonl": doc + "\n"}, meta={"seed": config.DEFAULT_SEED})
    for name in ("tokenizer", "base", "sft", "sft_tools"):
        stages.save_stage(name, {**save_model_files(lm), stages.TOKENIZER_FILE: lambda p: BYTES.save(p)},
                          meta={**model_meta(lm), "metrics": dict.fromkeys(CHAT_SKILLS, 0.5)})


def test_the_vision_stage_builds_saves_and_loads():
    fake_sft_tools()
    quick = dict(max_steps=2, batch_size=4, eval_batches=1)
    aligned = vision.align(cfg=vision.align_config(**quick), progress=False, verbose=False)
    parent = model_from_stage(stages.load_stage("sft_tools")).state_dict()
    tower = {k: v.clone() for k, v in aligned.model.vision.state_dict().items()}
    # Step 1 moved the tower and left the language model exactly as it was.
    assert all(torch.equal(parent[k], v) for k, v in aligned.model.lm.state_dict().items())
    assert not all(torch.equal(tower[k], v) for k, v in vision.new_vision_chat(
        tiny_lm(block_size=128), BYTES, aligned.model.vision.config).vision.state_dict().items())
    run = vision.build_vision_stage(aligned, cfg=vision.finetune_config(**quick), progress=False, verbose=False)
    stage = stages.load_stage("vision")
    assert stage.meta["parents"] == ["sft_tools"] and stage.meta["vision_config"]["patch"] == 8
    on_disk = json.loads(stage.path("metrics.json").read_text())
    for kind in I.KINDS:
        for key in (f"{kind}_accuracy", f"{kind}_accuracy_aligned", f"{kind}_blank_accuracy", f"{kind}_constant_guess"):
            assert 0.0 <= stage.metrics[key] == on_disk[key] <= 1.0
    assert set(vision.HEADLINE_METRICS) <= set(stage.metrics) and "examples" in on_disk
    assert stage.metrics["known_fact_accuracy_drop_pts"] == round(100 * (0.5 - stage.metrics["known_fact_accuracy"]), 2)
    model, tok = vision.load_vision_model()
    qa = run.questions["test"][0]
    with torch.no_grad():
        ids = torch.tensor([vision.encode_prompt(qa.question, tok, model.head_ids.tolist())])
        assert torch.equal(model(qa.image, ids)[0], run.model.eval()(qa.image, ids)[0])
