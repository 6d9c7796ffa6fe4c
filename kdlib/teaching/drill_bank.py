"""The scenarios of notebook 00's drills (``kdlib.teaching.drills.Drill``): what an interviewer asks, the model
answer in the seven steps' order with this kit's measured numbers as ``{fact}`` placeholders, the traps, the
follow-ups. They span the survey: classifier from LLM labels, reranker, assistant, draft model, on-device model,
pruned LLM, a closed-API teacher, reasoning, and a case where distillation is the wrong answer.
"""
from __future__ import annotations

from kdlib.teaching.drills import Drill

D = Drill
DRILLS: tuple[Drill, ...] = (
    D("moderation", "A moderation classifier from LLM labels",
      "Moderators triage comments with a large LLM behind an API. Volume is 2 million comments a day. Product wants "
      "a classifier in the serving path at under 20 ms p99 on CPU, with no loss of recall on harmful content. How "
      "would you distil it?",
      (("target", "A classifier inside the p99 budget at the served batch on CPU, with recall on each harmful class "
                  "(per language and topic) as the floor, and a cost per request far below an API call."),
       ("teacher", "The LLM as labeller, with the written policy in its prompt; measure it against a gold set the "
                   "policy team labelled before trusting it: where the teacher was wrong the student was right on "
                   "only {teacher_wrong_student} (09). Check the provider's terms allow training on its outputs."),
       ("student", "A small pretrained encoder, initialised from a larger one's layers: a copied-layer student kept "
                   "{bert_retained} of its teacher's accuracy at {bert_speedup}x the speed (04)."),
       ("signal", "The LLM's class probabilities if the API returns log-probabilities (soft targets), else its "
                  "labels with a confidence; a fixed label set in the prompt so outputs parse."),
       ("data", "Unlabelled production comments, deduplicated, oversampling the rare harmful classes; the teacher "
                "labels them cheaply, humans label a gold set. Few human labels is where KD pays: with "
                "{bert_labels} labels and {bert_transfer} teacher-labelled tweets the student kept {bert_retained} "
                "of the teacher against {bert_labels_retained} on labels only (04)."),
       ("evaluation", "Precision and recall per class on the gold set, per slice and on recent data (new slang), "
                      "with seeds and the labels-only student as the baseline; never the LLM's labels as the test."),
       ("serving", "A cascade: the student decides confident cases, the uncertain ones go to the LLM or a human "
                   "queue, the threshold chosen on validation data for the recall floor; the cascade of notebook 09 kept "
                   "{cascade_acc} accuracy against the teacher's {cascade_teacher_acc}, sending {cascade_teacher_share} "
                   "on, and paid for its distillation after {break_even} requests. Relabel and retrain as the policy "
                   "changes.")),
      ("testing on the LLM's own labels", "no plan for policy changes (the student freezes last month's rules)"),
      ("The LLM disagrees with the policy team on one language: what do you do?",
       "How would you notice drift after launch?", "What changes if the API returns only labels, no probabilities?")),
    D("reranker", "A cross-encoder reranker into a bi-encoder or a small reranker",
      "Search re-ranks the top 100 candidates of each query with a 12-layer cross-encoder, and the re-ranking step "
      "is over its latency budget. Make it cheaper without losing ranking quality.",
      (("target", "The re-ranking latency per query at p99 for 100 candidates, and the ranking metric (nDCG or "
                  "recall at the cut-off the page shows) as the floor, per query type."),
       ("teacher", "The cross-encoder, fine-tuned on in-domain judgements or clicks first; its scores on real "
                   "query-candidate pairs are the signal, its mistakes on rare query types are the risk."),
       ("student", "Either a bi-encoder (documents embedded offline, one query encoding per request) or a smaller "
                   "cross-encoder of the teacher's own layers; latency is not proportional to depth, so measure: "
                   "copied layers gave {bert_speedup}x at the served batch (04)."),
       ("signal", "The teacher's scores over the whole candidate list (a listwise KL with a temperature over "
                  "candidates, or a margin loss between pairs), not binary relevance: the order among the "
                  "near-misses is the dark knowledge here."),
       ("data", "Real queries from the logs with the candidates the first-stage retriever returns (the distribution "
                "the reranker sees), including hard negatives, scored once by the teacher and cached by pair id."),
       ("evaluation", "nDCG and recall on human-judged queries, per query type and on new queries, with the "
                      "undistilled student as baseline; agreement with the teacher's ranking only as a diagnostic."),
       ("serving", "Precompute document embeddings; keep the cross-encoder for the top few of head queries if "
                   "quality needs it (a cascade: {cascade_teacher_share} of requests went on in notebook 09); report p99 "
                   "latency and cost per query, not parameters.")),
      ("distilling on binary relevance labels only", "training on random negatives instead of the retriever's"),
      ("Bi-encoder or small cross-encoder: what decides?", "How do you cache the teacher's scores safely?",
       "Where would the student fail first?")),
    D("assistant", "A 7B support assistant from a stronger model",
      "Support uses a frontier model behind an API to answer product questions. Legal and cost push for a 7B "
      "model you host yourselves. How do you get there with distillation?",
      (("target", "Resolution rate and policy compliance on real tickets, per product area, at the latency and cost "
                  "of self-hosting; refusals only where policy requires them."),
       ("teacher", "The frontier model with the product documents and tools in its prompt, checked on a gold set "
                   "of resolved tickets; its over-refusals are inherited: students of an over-refusing teacher "
                   "refused {overrefusal_inherited} of harmless look-alikes (08). Check the terms allow it."),
       ("student", "An open 7B instruct model fine-tuned (full or LoRA) on the teacher's data; LoRA's AdamW state "
                   "was {lora_state} MB against {full_state} MB for full fine-tuning of the same student (11)."),
       ("signal", "Sequence-level KD (the teacher's answers as SFT targets), tool calls as part of the traces, then "
                  "preferences (DPO on teacher-judged pairs) for tone and policy; token-level KD only with "
                  "access to the teacher's logits and the same tokenizer."),
       ("data", "A prompt pool from real tickets, balanced across products, adversarial and policy prompts added; "
                "teacher traces filtered by execution and verification, deduplicated, mixed with gold "
                "answers: gold traces raised accuracy on distractors by {gold_mix_distractors} points (08)."),
       ("evaluation", "Resolution judged against gold answers or by humans, per product and on policy slices, not "
                      "a win rate judged by the teacher: that win rate was {judge_win_rate} against {gold_win_rate} "
                      "judged by gold answers (07)."),
       ("serving", "Batched serving with quantization, a draft model for speed, and escalation of low-confidence "
                   "answers to the frontier model or a human; cost per resolved ticket against the API bill.")),
      ("evaluating with the teacher as judge only", "no safety or over-refusal evaluation"),
      ("The student refuses harmless questions: where did that come from?", "When would you use DPO here?",
       "How do you keep the student current when the product changes?")),
    D("draft", "A draft model for speculative decoding",
      "Your serving team runs a large LLM and wants speculative decoding to cut latency. They ask you for the draft "
      "model. What do you build, and how do you know it pays?",
      (("target", "Wall-clock tokens per second at the served batch, with the target's outputs unchanged (exactly, "
                  "for greedy decoding); speed is the only quality a draft has."),
       ("teacher", "The target model itself: the draft is graded on agreeing with it, so it is the teacher."),
       ("student", "A small model with the target's tokenizer (shared vocabulary is required for verification), a "
                   "few of the target's own layers or a small model of the same family; its cost per forward "
                   "matters: here a draft cost {draft_cost} target forwards (11)."),
       ("signal", "Token-level KD from the target's logits (forward KL, top-k cached) or sequence KD on the target's "
                  "generations, which is what the draft will see."),
       ("data", "Prompts like production's, with the target's own continuations, at the sampling settings you "
                "serve with."),
       ("evaluation", "The acceptance rate alpha on held-out prompts (greedy and sampled): a token-KD draft reached "
                      "{draft_alpha_kd} against {draft_alpha_text} for a draft trained on text (11); then measured "
                      "tokens per second, not alpha alone."),
       ("serving", "The speed-up is the expected tokens per round over the cost of a round, gamma c plus one target forward: on this CPU a draft pays only above "
                   "alpha {draft_break_even} (11); on a GPU the target's forward is memory-bound and c is small. "
                   "Tune gamma per workload.")),
      ("quoting acceptance without the draft's cost", "a draft with a different tokenizer"),
      ("Why does greedy speculative decoding keep the target's output exactly?",
       "Acceptance is high but there is no speed-up: why?", "Would you quantize the draft?")),
    D("keyboard", "An on-device keyboard model",
      "A phone keyboard suggests the next word. A server language model does it well, but the model on the phone "
      "must fit in 10 MB and answer within a few milliseconds, offline.",
      (("target", "Memory on device, latency per keystroke at batch one, battery; quality as top-three "
                  "suggestion accuracy per language, measured on device."),
       ("teacher", "The server LM, corrected on keyboard-like text (short, informal): a chat teacher teaches its "
                   "own distribution; correcting the teacher first moved a pruned student from "
                   "{recovery_uncorrected} to {recovery_kd} perplexity (10)."),
       ("student", "A tiny LM with its own small vocabulary (a different tokenizer from the teacher's), so token "
                   "KD needs care: the teacher's mass on shared tokens was {xtok_shared_mass} (05b)."),
       ("signal", "Sequence KD on teacher-written text works across tokenizers (cross-tokenizer sequence KD reached "
                  "perplexity {xtok_seqkd_ppl} against {xtok_plain_ppl} for the plain student, 05b); top-k token KD "
                  "where the vocabularies align."),
       ("data", "Public text shaped like typing plus the teacher's continuations; no user text leaves the device "
                "(privacy), so personalisation is on device or federated."),
       ("evaluation", "Suggestion accuracy on held-out typing-like text per language, measured on the phone's "
                      "hardware after quantization."),
       ("serving", "int8 or int4 weights: at the lowest bit-width QAT with KD reached {qat_kd} against {qat_lm} "
                   "with the plain loss, and distilling before quantizing reached {distil_then_quantize} (10).")),
      ("ignoring the tokenizer mismatch", "measuring latency on a laptop instead of the device"),
      ("Why not prune the server model instead?", "How would you personalise without collecting text?",
       "Which latency number would you report?")),
    D("pruned", "A pruned LLM recovered by distillation",
      "You have a good 8B model and need one half its size for the same tasks, with a small training budget. "
      "Prune and distil, or train a new small model?",
      (("target", "Half the parameters (or the latency and memory that buys) with the smallest quality loss on "
                  "your evaluation suite, within the token budget."),
       ("teacher", "The unpruned model, corrected on your data distribution first (Minitron's teacher correction)."),
       ("student", "The pruned model: rank neurons, heads and layers by importance on calibration text before "
                   "cutting; a random half was {prune_random}x worse in perplexity than the important half (10)."),
       ("signal", "Logit KD from the teacher (top-k cached) instead of the plain LM loss: recovery reached "
                  "{recovery_kd} against {recovery_lm} (10)."),
       ("data", "A small, high-quality slice of the pretraining and task distribution; pruning keeps what the "
                "weights learned, so recovery needs far fewer tokens than training from scratch."),
       ("evaluation", "The task suite and perplexity on held-out text, width against depth pruning compared after "
                      "recovery, not before."),
       ("serving", "Depth pruning cuts batch-one latency most, width shrinks every matrix; quantize last with QAT "
                   "and KD ({qat_kd} against {qat_lm}, 10).")),
      ("pruning at random or by weight magnitude without calibration", "comparing prunes before recovery"),
      ("Width or depth?", "Why correct the teacher?", "Prune then quantize, or the reverse?")),
    D("api_text_only", "A closed-API teacher that returns text only",
      "The best model for your task is a closed API: no logits, no weights, only text. You want a model of your "
      "own. What can you distil, and what can't you?",
      (("target", "The task metric on your data, at your serving cost, under the provider's terms of use."),
       ("teacher", "The API model as a text generator; read the terms first (many forbid training competing "
                   "models), version-pin the model, and measure it on gold data."),
       ("student", "An open model with its own tokenizer: no logits means no token-level KD, so the student's "
                   "vocabulary is free."),
       ("signal", "Sequence KD on the teacher's answers, rationales (step-by-step explanations: the rationale "
                  "student reached {rationale_acc} against {answer_only_acc} answer-only, 06), and preferences "
                  "(teacher-judged pairs for DPO)."),
       ("data", "A prompt pool covering the task, several samples per prompt, filtered by verification (answers "
                "checked, code executed), deduplicated; the teacher's errors removed, not learned."),
       ("evaluation", "Gold labels, not the API as judge (teacher-judged win rate {judge_win_rate}, gold "
                      "{gold_win_rate}, 07); held-out templates and out-of-range inputs."),
       ("serving", "Your own serving stack; the break-even against paying per call decides whether it was worth "
                   "it ({break_even} requests for the cascade of notebook 09).")),
      ("assuming logits are available", "ignoring the terms of use"),
      ("Without logits, what is lost?", "How many samples per prompt would you draw, and why?",
       "The provider updates the model: what breaks?")),
    D("reasoning", "A small model that shows its working",
      "A tutoring product needs a small model that solves arithmetic word problems and shows its steps; a large "
      "model does it well. How do you distil it?",
      (("target", "Answer accuracy on held-out problems, including longer ones than in training, with valid "
                  "working, at the latency of a small model."),
       ("teacher", "The large model writing step-by-step solutions; check its accuracy per problem length first."),
       ("student", "A small LM that writes its own working: rationales cost tokens at inference, "
                   "{rationale_tokens}x the answer-only tokens here (06)."),
       ("signal", "Rationales as targets (distilling step-by-step), then preferences: DPO on teacher-judged pairs "
                  "gained {dpo_gain} in gold accuracy over the SFT student (07)."),
       ("data", "Teacher rationales filtered by answer verification; tool calls for arithmetic where exactness "
                "matters: the tool student reached {tool_out_of_range} out of range against "
                "{rationale_out_of_range} for the rationale student (08)."),
       ("evaluation", "Gold answers, per problem length and on out-of-range numbers; check the working, not only "
                      "the answer; a biased judge's preference moved the student {bias_student} points (07)."),
       ("serving", "Tokens per answer set the cost: rationale students answer slower than answer-only ones; a tool "
                   "call adds its execution time.")),
      ("trusting a teacher judge without gold answers", "no evaluation beyond the training lengths"),
      ("Rationales or answers only: what does the data-efficiency curve say?",
       "Why did the rationale student match the answer-only student with a fraction of the data?",
       "When would you add a calculator tool?")),
    D("wrong_answer", "When distillation is the wrong answer",
      "An internal tool classifies about 200 contracts a day with a large model. Someone proposes distilling it "
      "into a small model to save money. What do you say?",
      (("target", "Cost and quality at 200 requests a day: the fixed cost of distilling must be earned back by "
                  "per-request savings."),
       ("teacher", "The large model is already good and already deployed; its cost per request is small in total "
                   "at this traffic."),
       ("student", "Any student needs a training run, an evaluation suite and maintenance when contracts change."),
       ("signal", "Irrelevant until the economics work."),
       ("data", "Contract data may be sensitive: generating a transfer set adds handling cost."),
       ("evaluation", "Before building anything, compute the break-even with the whole fixed cost: notebook 09's "
                      "cascade needed {break_even} requests to earn back only its compute (the teacher's labelling "
                      "and the student's training); add the engineers' time, the evaluation suite and retraining, and "
                      "at a few hundred requests a day the payback is years away."),
       ("serving", "Serve the teacher (prompt it, cache its answers, batch overnight); revisit if traffic grows "
                   "or latency becomes a constraint. On full data with a good teacher the gain can be noise "
                   "too: KD changed MNIST test errors by {mnist_full_gain} against seed noise {mnist_full_noise} "
                   "(02).")),
      ("distilling without computing the break-even", "ignoring maintenance and retraining cost"),
      ("At what traffic would you change your mind?", "What else could cut the cost?",
       "What if latency, not cost, were the problem?")),
)
