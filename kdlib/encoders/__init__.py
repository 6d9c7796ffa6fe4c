"""BERT-style encoders: the MiniLM teacher, students built from it, the teacher-state cache and the
distillation step. Notebook 04.

Modules: ``models`` (loading, students from teacher layers, random or narrow students), ``batches``
(``TokenSplit``: training data cut to each batch's longest sequence on the data side), ``cache`` (the teacher's
hidden states, attention maps and values, cached once), ``train`` (fine-tuning the teacher, ``encoder_step``,
``low_label_step``), ``tweets`` (the tweet-sentiment teacher of notebooks 04 and 09).
"""
from kdlib.encoders.models import (LoadedEncoder, load_encoder_teacher, EncoderClassifier, EncoderOutputs,
                                   attention_bias, encode, check_tokenizer, student_from_teacher_layers,
                                   random_student, narrow_student)
from kdlib.encoders.batches import TokenSplit, TokenBatch
from kdlib.encoders.cache import EncoderTeacherCache
from kdlib.encoders.train import (prepare_encoder_teacher, predict_by_length, encoder_step, Distillable,
                                  low_label_step)
from kdlib.encoders.tweets import tweet_teacher_recipe, prepare_tweet_teacher

__all__ = ["LoadedEncoder", "load_encoder_teacher", "EncoderClassifier", "EncoderOutputs", "attention_bias",
           "encode", "TokenSplit", "TokenBatch", "check_tokenizer", "student_from_teacher_layers", "random_student",
           "narrow_student", "EncoderTeacherCache", "prepare_encoder_teacher", "predict_by_length", "encoder_step",
           "Distillable", "low_label_step", "tweet_teacher_recipe", "prepare_tweet_teacher"]
