"""Training (section 4.2), a wing of its own: the audits never import it.

    command.py  avaudit.train: DATA in; the checkpoint, its history and the skipped list out
    recipe.py   the stages run in order: start, run_stage, run_epoch, validate, finish
    state.py    TrainState (what the loop holds), ResumeState (what a checkpoint resumes), History
    stages.py   the three stages: what each trains and measures
    split.py    the train / validation split, training labels, each epoch's order and rank shares
    sources.py  the clips: decoded by workers while the network trains, or kept in memory
"""
