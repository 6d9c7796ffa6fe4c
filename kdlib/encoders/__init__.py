"""BERT-style encoders: the MiniLM teacher, students built from it, the teacher-state cache and the
distillation step. Notebook 04.

Modules: ``models`` (loading, students from teacher layers, random or narrow students), ``cache`` (the teacher's
hidden states, attention maps and values, cached once), ``train`` (fine-tuning the teacher, ``encoder_step``).
"""
from kdlib.encoders.models import (LoadedEncoder, load_encoder_teacher, EncoderClassifier, EncoderOutputs, encode,
                                   check_tokenizer, student_from_teacher_layers, random_student, narrow_student)
from kdlib.encoders.cache import EncoderTeacherCache
from kdlib.encoders.train import prepare_encoder_teacher, predict_by_length, encoder_step, Distillable

__all__ = ["LoadedEncoder", "load_encoder_teacher", "EncoderClassifier", "EncoderOutputs", "encode",
           "check_tokenizer", "student_from_teacher_layers", "random_student", "narrow_student",
           "EncoderTeacherCache", "prepare_encoder_teacher", "predict_by_length", "encoder_step", "Distillable"]
