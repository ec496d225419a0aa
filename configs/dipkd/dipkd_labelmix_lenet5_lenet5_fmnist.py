# DIP-KD with 70 % of the 50K queries spent on blends of already-labelled priors (our
# addition): the first 15K plain priors are labelled as usual, then 35K images
# lam * a + (1 - lam) * b (lam uniform in [0.2, 0.8]) of pairs whose teacher labels differ,
# both drawn class-balanced by their labels. Such blends land between the teacher's classes,
# where plain priors rarely do. A 20K-label probe on the real test split, four seeds each
# (docs/benchmarks.md): 74.7 % without blends, 77.2 % with 70 % blends of uniformly drawn
# pairs, 77.7 % with class-balanced pairs; 50K runs: 81.0 % (uniform pairs) and 82.1 %
# (balanced) against 79.5 % for dipkd_lenet5_lenet5_fmnist.py.
_base_ = ['./dipkd_lenet5_lenet5_fmnist.py']

model = dict(synthesizer=dict(label_mix=0.7, label_mix_lam=(0.2, 0.8), label_mix_balanced=True))
