# CPSC-DFKD from image priors with a folded student, 10 student steps per generator step
# (cpsc_dfkd_priors_folded_steps10), and a generator that sees the prior it edits: the
# class-conditional DCGAN inside PriorResidualGenerator adds the same kind of class texture
# to every prior, whatever the prior looks like; the ConditionalImageEditor takes the prior,
# the noise and the label and draws a residual for that image (class-conditional BN in every
# layer, as in the DCGAN), an amortised version of DeepInversion's per-image pixel steps.
# Every CPSC-DFKD term and weight is unchanged (docs/benchmarks.md, CPSC-DFKD).
_base_ = ['./cpsc_dfkd_priors_folded_steps10_lenet5bn_lenet5half_fmnist.py']

model = dict(
    synthesizer=dict(generator=dict(generator=dict(type='ConditionalImageEditor', ngf=16))))
