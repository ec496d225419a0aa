# DIP-KD's image priors for Fashion-MNIST in the teacher's normalised input space (the prior
# recipe of configs/dipkd/dipkd_lenet5_lenet5_fmnist.py): hierarchical noise blobs, rotated,
# elastically distorted, cropped, semantically mixed, on a dark background and zoomed out.
# Configs that start synthesis from priors take it as {{_base_.fmnist_image_prior}}.
fmnist_image_prior = dict(
    type='ImagePriorGenerator', image_shape=(1, 32, 32), mean=[72.94], std=[90.0],
    hierarchical=True, rotation=45.0, elastic_alpha=3.0, elastic_sigma=2.0,
    crop_scale=(0.5, 1.0), mix_prob=0.5, monochrome_prob=0.5, background_prob=1.0,
    background_range=(0.0, 0.1), zoom_range=(0.6, 1.0), aspect_sigma=0.4)
