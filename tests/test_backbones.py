import pytest
import torch
from torchvision.models.video import mc3_18

from avaudit.config import load_config
from avaudit.model.backbones import AudioNet, VideoNet, load_video_weights

# Table 6(a): (row, output segments x height x width); channels from the "# filters" column.
TABLE_6A = [("conv1", 64, (10, 50, 80)), ("conv2", 64, (10, 50, 40)), ("maxpool2", 64, (10, 50, 19)),
            ("conv3", 192, (10, 50, 19)), ("maxpool3", 192, (10, 24, 9)), ("conv4", 256, (10, 24, 9)),
            ("conv5", 256, (10, 24, 9)), ("conv6", 256, (10, 24, 9)), ("maxpool6", 256, (10, 11, 4)),
            ("conv7", 512, (10, 10, 1))]


def test_audio_network_rows_have_table_6a_shapes():
    net = AudioNet().eval()
    x = torch.randn(1, 1, 10, 100, 80)
    rows = dict(net.rows())
    with torch.no_grad():
        for name, channels, shape in TABLE_6A:
            x = rows[name](x)
            assert tuple(x.shape) == (1, channels, *shape), name
        z = net(torch.randn(2, 1000, 80))
    assert z.shape == (2, 100, 512)  # fc8/fc9: 100 x 512


def test_audio_steps_follow_time():
    """A change in second s of the log-mel only moves steps 10s .. 10s+9."""
    net = AudioNet(widths=(4, 4, 8, 8, 8, 8, 16), embed_dim=16).eval()
    mel = torch.randn(1, 1000, 80)
    changed = mel.clone()
    changed[:, 300:400] += 5
    with torch.no_grad():
        diff = (net(mel) - net(changed)).abs().sum(-1)[0]
    assert diff[30:40].min() > 0 and diff[:30].max() == 0 and diff[40:].max() == 0


def test_video_network_keeps_every_frame_table_6b():
    net = VideoNet().eval()
    x = torch.randn(1, 3, 4, 112, 112)
    with torch.no_grad():
        sizes = []
        for stage in (net.stem, net.layer1, net.layer2, net.layer3, net.layer4):
            x = stage(x)
            sizes.append(tuple(x.shape[1:]))
    assert sizes == [(64, 4, 56, 56), (64, 4, 56, 56), (128, 4, 28, 28), (256, 4, 14, 14), (512, 4, 7, 7)]


@pytest.mark.slow
def test_torchvision_mc3_18_state_dict_loads_and_gives_the_same_features(tmp_path):
    torch.manual_seed(0)
    reference = mc3_18().eval()
    path = tmp_path / "mc3_18-a90a0ba3.pth"
    torch.save(reference.state_dict(), path)
    net = VideoNet().eval()
    load_video_weights(net, path)
    assert sum(p.numel() for p in reference.parameters()) == 11_695_440
    x = torch.randn(1, 3, 3, 112, 112)
    with torch.no_grad():
        expected = reference.layer4(reference.layer3(reference.layer2(reference.layer1(reference.stem(x)))))
        torch.testing.assert_close(net(x), expected.permute(0, 2, 3, 4, 1))


def test_wrong_weight_files_fail_clearly(tmp_path):
    text = tmp_path / "notes.pth"
    text.write_text("not weights")
    with pytest.raises(ValueError, match="notes.pth: not a PyTorch state dict"):
        load_video_weights(VideoNet(), text)
    small = load_config("small").model
    other = tmp_path / "small.pth"
    torch.save(VideoNet(small.video_stem_width, small.video_widths, small.video_blocks).state_dict(), other)
    with pytest.raises(ValueError, match="small.pth: does not fit .*wrong shape"):
        load_video_weights(VideoNet(), other)
    with pytest.raises(ValueError, match="no such file"):
        load_video_weights(VideoNet(), tmp_path / "absent.pth")
