"""Our byte-level BPE against Hugging Face `tokenizers` on the course's clean corpus; prints JSON.

Same training documents, same vocabulary size (256 bytes + the specials + merges), for:
  ours           course_utils.tokenizer (pure Python)
  hf             Hugging Face ByteLevel BPE with its default pre-tokeniser (GPT-2's regex)
  hf_same_split  Hugging Face BPE with our split pattern, so only the BPE code differs
Reported: training seconds, bytes per token on the held-out split (English and Chinese
separately; higher is better), and encoding speed in MB/s.

    COURSE_PROFILE=cpu .venv/bin/python benchmarks/tokenizer.py
"""
import json
import os

from course_utils import config, tokenizer
from course_utils.cleaning import load_clean_corpus


def main() -> dict:
    train, val = load_clean_corpus("train"), load_clean_corpus("val")
    report = {"profile": config.profile(), "cpu_count": os.cpu_count(),
              "load_average_1min": round(os.getloadavg()[0], 1),  # other work on the machine slows both sides
              **tokenizer.compare_with_huggingface(train, val, tokenizer.course_vocab_size())}
    print(json.dumps(report, indent=2))
    return report


if __name__ == "__main__":
    main()
