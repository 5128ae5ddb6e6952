"""Tiny random models of each BERT family, made by transformers and saved as Hugging Face folders with the
family's own tokenizer files (3 heads of 8, ``embedding_size != hidden_size`` where the family has one). Shared by
tests/families: `import tiny_families` (tests/ is on pytest's pythonpath); transformers is a test dependency."""

from __future__ import annotations

import shutil
from pathlib import Path

import transformers

SIZE = {"hidden_size": 24, "num_hidden_layers": 2, "num_attention_heads": 3, "intermediate_size": 37}


def tiny_family_folder(family: str, out: Path, subword_dirs: dict, vocab_txt: Path) -> Path:
    """A random tiny model of ``family`` saved by transformers, with the family's tokenizer files."""
    from bertkit.tokenization import Tokenizer

    out.mkdir(parents=True)
    if family in ("bert", "distilbert", "electra", "ernie"):
        Tokenizer.from_vocab(vocab_txt, do_lower_case=True).save_pretrained(out)
    else:
        source = subword_dirs[{"albert": "albert", "roberta": "roberta", "xlm-roberta": "xlmr"}[family]]
        for f in source.iterdir():
            shutil.copyfile(f, out / f.name)
    tokenizer = Tokenizer.from_pretrained(out)
    vocab = tokenizer.vocab_size
    ids = {"pad_token_id": tokenizer.pad_token_id}
    if family == "bert":
        config = transformers.BertConfig(vocab_size=vocab, max_position_embeddings=128, **SIZE, **ids)
    elif family == "distilbert":
        config = transformers.DistilBertConfig(
            vocab_size=vocab, dim=24, n_layers=2, n_heads=3, hidden_dim=37, max_position_embeddings=128, **ids
        )
    elif family == "albert":
        config = transformers.AlbertConfig(
            vocab_size=vocab,
            embedding_size=16,
            num_hidden_groups=2,
            max_position_embeddings=128,
            **SIZE,
            **ids,
        )
    elif family in ("roberta", "xlm-roberta"):
        cls = transformers.RobertaConfig if family == "roberta" else transformers.XLMRobertaConfig
        config = cls(vocab_size=vocab, max_position_embeddings=130, type_vocab_size=1, **SIZE, **ids)
    elif family == "electra":
        config = transformers.ElectraConfig(
            vocab_size=vocab, embedding_size=16, max_position_embeddings=128, **SIZE, **ids
        )
    else:
        config = transformers.ErnieConfig(
            vocab_size=vocab, max_position_embeddings=128, use_task_id=True, **SIZE, **ids
        )
    transformers.set_seed(0)
    transformers.AutoModel.from_config(config).save_pretrained(out)
    return out
